"""Test setup: everything offline, small and deterministic."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault(
    "ALARM_PL_CACHE", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".alarm_pl_cache")
)
