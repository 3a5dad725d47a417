"""alarm_pl: ALaRM (hierarchical-reward RLHF) on PyTorch Lightning.

Nothing heavy happens at import: models, scorers and servers start in ``setup``.
"""

__version__ = "0.1.0"
