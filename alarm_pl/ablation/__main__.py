"""``python -m alarm_pl.ablation --config CONFIG --strategies ... --seeds ... --out DIR [-- OVERRIDES...]``."""

import sys

from alarm_pl.ablation.cli import main

if __name__ == "__main__":
    sys.exit(main())
