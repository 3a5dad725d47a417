"""``python -m alarm_pl fit|validate|test --config configs/X.yaml``."""

from alarm_pl.cli import main

if __name__ == "__main__":
    main()
