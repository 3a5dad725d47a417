"""The testbed's configurations: tiny_testbed.yaml is tiny_mt.yaml with only the holistic reward (and the output
directories) replaced, so an ablation on the two differs in the holistic reward alone; tiny_rm.yaml trains the model
tiny_testbed.yaml reads, with the template the scorer then reads from the export."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

CONFIGS = Path(__file__).parents[1] / "configs"


def _load(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


def test_testbed_differs_from_tiny_mt_only_in_the_holistic_reward():
    testbed, tiny = _load("tiny_testbed.yaml"), _load("tiny_mt.yaml")
    holistic = testbed["model"]["init_args"]["holistic"]
    assert holistic["class_path"] == "alarm_pl.rewards.holistic.RewardModelScorer"
    assert "template" not in holistic["init_args"]  # read from the export: the one it was trained with
    normalizer = holistic["init_args"]["normalizer"]["init_args"]
    assert normalizer["std"] > 0 and (normalizer["mean"], normalizer["std"]) != (0.0, 1.0)  # calibrated, not a default
    comparable = copy.deepcopy(testbed)
    comparable["model"]["init_args"]["holistic"] = tiny["model"]["init_args"]["holistic"]
    comparable["trainer"]["default_root_dir"] = tiny["trainer"]["default_root_dir"]
    comparable["trainer"]["logger"]["init_args"]["save_dir"] = tiny["trainer"]["logger"]["init_args"]["save_dir"]
    assert comparable == tiny


def test_reward_model_config_feeds_the_testbed():
    rm, testbed = _load("tiny_rm.yaml"), _load("tiny_testbed.yaml")
    assert rm["model"]["class_path"] == "alarm_pl.reward_training.RewardModelModule"
    assert "runs/tiny_rm/export" in (CONFIGS / "tiny_rm.yaml").read_text()  # the command in its header
    scorer = testbed["model"]["init_args"]["holistic"]["init_args"]
    assert scorer["model_name_or_path"] == "runs/tiny_rm/export"
    assert scorer["max_length"] == rm["model"]["init_args"]["max_length"]
    spec_policy = rm["data"]["init_args"].get("spec", {}).get("policy", "tiny:mt-seq2seq")
    assert spec_policy == testbed["model"]["init_args"]["policy"]["model_name_or_path"]  # pairs from the PPO start
