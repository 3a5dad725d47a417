"""``python -m alarm_pl.eval compare ...``; see ``alarm_pl.eval.cli``."""

from alarm_pl.console import run_command
from alarm_pl.eval.cli import main

run_command(main)
