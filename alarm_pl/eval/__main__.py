"""``python -m alarm_pl.eval compare ...``; see ``alarm_pl.eval.cli``."""

import sys

from alarm_pl.eval.cli import main

sys.exit(main())
