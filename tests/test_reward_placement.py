"""Reward models on a device of their own (RewardModelScorer's ``device``): the CPU-side logic."""

from __future__ import annotations

import pytest
import torch
from helpers import LLAMA_SHRINK
from test_reward_model import scoring_input

from alarm_pl.models.reward_model import ULTRARM_KEY_MAPPING
from alarm_pl.rewards.holistic import RewardModelScorer, placement

KEY = "scorer 'holistic' device"


def test_placement_rules(monkeypatch):
    assert placement(None, torch.device("cpu"), KEY) == torch.device("cpu")  # unset: the module's device
    assert placement("cpu", torch.device("cuda", 0), KEY) == torch.device("cpu")  # configured wins
    with pytest.raises(ValueError, match=r"scorer 'holistic' device: 'gpu1' is not a device"):
        placement("gpu1", torch.device("cpu"), KEY)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"'cuda:1' requested but this machine has 0 CUDA device\(s\)"):
            placement("cuda:1", torch.device("cpu"), KEY)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert placement("cuda:1", torch.device("cuda", 0), KEY) == torch.device("cuda", 1)
    assert placement("cuda", torch.device("cpu"), KEY) == torch.device("cuda")
    with pytest.raises(ValueError, match="has 2 CUDA device.*index below 2"):
        placement("cuda:2", torch.device("cuda", 0), KEY)


def test_configured_device_overrides_the_module_device():
    scorer = RewardModelScorer(
        "dummy:ultrarm-13b", dummy_overrides=LLAMA_SHRINK, key_mapping=ULTRARM_KEY_MAPPING, device="cpu"
    )
    scorer.setup(torch.device("meta"))  # the module's device would be unusable; the configured one is taken
    assert scorer.model.device == torch.device("cpu")
    score = scorer.score(scoring_input(["Where is the cat?", "Hi"], ["On the mat.", "Hello there, friend."], [3, 5]))
    assert score.metric.shape == (2,) and score.values.device == torch.device("cpu")
    assert score.placed.tolist() == [[False, False, True, False, False], [False, False, False, False, True]]
