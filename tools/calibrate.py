"""Print FixedNormalizer snippets measured on the current policy; see ``alarm_pl.calibrate``."""

from alarm_pl.calibrate import main

if __name__ == "__main__":
    main()
