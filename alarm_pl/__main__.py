"""``python -m alarm_pl fit|validate|test --config configs/X.yaml``."""

from alarm_pl.cli import cli_main

if __name__ == "__main__":
    cli_main()
