"""The paper's ablation as one command: ``python -m alarm_pl.ablation`` (see ``cli.py``)."""
