"""The paper's configs, end to end on a CPU: configs/{mt,qa}.yaml + configs/smoke/*_cpu.yaml through the real CLI.

Real model classes with shrunk dummy weights, the holistic reward model quantized to 8 bits by bitsandbytes on the
CPU, Harper for MT's grammar, FineGrainedRLHF-shaped Longformers for QA, the Europarl-format fixture and real
QA-Feedback records: 2 rollouts, a validation pass and a test pass, checked by every log key the real run writes and
by the test generation file.
"""

from __future__ import annotations

import glob
import json
import math
from pathlib import Path

import pytest

from alarm_pl.cli import cli_main
from alarm_pl.rewards.pipeline import ScoringPipeline

ROOT = Path(__file__).parents[1]
TRAIN_KEYS = {
    "time/generate",
    "time/reference",
    "time/score",
    "time/update",
    "holistic",
    "holistic_raw",
    "response_length",
    "degenerate_rate",
    "kl",
    "kl_coef",
    "explained_variance",
    "loss/policy",
    "loss/value",
    "entropy",
    "approx_kl",
    "clipfrac",
    "ratio_mean",
    "vf_clipfrac",
    "ppo_epochs_run",
    "reward/total_mean",
    "reward/gate_pass_rate",
    "reward/holistic_component_mean",
    "reward/aspect_component_mean",
    "selection/num_active",
}
ASPECTS = {"mt": ["grammar", "readability", "language"], "qa": ["factuality", "relevance", "completeness"]}
SELECTED = {"mt": "grammar", "qa": "factuality"}


def expected_keys(task: str) -> set[str]:
    """What configs/<task>.yaml logs: every PPO statistic, each aspect's metric and selection flag, the selected
    aspect's reward, and the evaluation metrics (BLEU/chrF: both tasks have references)."""
    aspects = ASPECTS[task]
    train = TRAIN_KEYS | {f"aspect/{a}" for a in aspects} | {f"selection/{a}/active" for a in aspects}
    train |= {f"reward/{SELECTED[task]}_mean"}
    evaluation = {"holistic", "response_length", "bleu", "chrf"} | {f"aspect/{a}" for a in aspects}
    return {f"train/{k}" for k in train} | {f"val/{k}" for k in evaluation} | {f"test/{k}" for k in evaluation}


def logged_scalars(log_dir: Path) -> dict[str, list[float]]:
    """Every scalar of the run's TensorBoard event files (the real configs' default logger)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[float]] = {}
    for path in sorted(glob.glob(str(log_dir / "events.out.tfevents.*"))):
        events = EventAccumulator(path)
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(e.value for e in events.Scalars(tag))
    return scalars


@pytest.mark.parametrize("task", ["mt", "qa"])
def test_paper_config_runs_on_a_cpu_with_dummy_weights(task, tmp_path, monkeypatch):
    pytest.importorskip("bitsandbytes")
    if task == "mt":
        pytest.importorskip("harper")
    monkeypatch.chdir(ROOT)  # the configs name the fixture and the QA sample relative to the checkout
    # keep the reward models after the run (teardown releases them) so that their classes can be checked below
    monkeypatch.setattr(ScoringPipeline, "teardown", lambda self: None)
    cli = cli_main(
        [
            "fit",
            "--config",
            f"configs/{task}.yaml",
            "--config",
            f"configs/smoke/{task}_cpu.yaml",
            "--trainer.default_root_dir",
            str(tmp_path),
        ]
    )
    assert cli.trainer.global_step == 2  # two rollouts
    model = cli.model
    holistic = model.scoring.holistic_scorer.model.model
    assert type(holistic).__name__ == "LlamaForSequenceClassification"
    assert type(holistic.model.layers[0].mlp.down_proj).__name__ == "Linear8bitLt"  # bitsandbytes, on the CPU
    policy = model.policy.model.get_base_model()
    assert type(policy).__name__ == {"mt": "MT5ForConditionalGeneration", "qa": "T5ForConditionalGeneration"}[task]
    if task == "qa":
        heads = [type(a.model.model).__name__ for a in model.scoring.aspect_scorers]
        assert heads == ["LongformerForTokenClassification"] * 2 + ["LongformerForSequenceClassification"]
    else:
        assert model.scoring.aspect_scorers[0].backend == "harper"

    log_dir = Path(cli.trainer.logger.log_dir)
    scalars = logged_scalars(log_dir)
    missing = expected_keys(task) - set(scalars)
    assert not missing, f"keys the real run writes but the smoke run did not: {sorted(missing)}"
    assert len(scalars["train/kl_coef"]) == 2 and all(math.isfinite(v) for vs in scalars.values() for v in vs)
    assert scalars[f"train/selection/{SELECTED[task]}/active"] == [1.0, 1.0]  # the paper's fixed selection

    generations = sorted((log_dir / "generations").glob("test-step*.jsonl"))
    assert [p.name for p in generations] == ["test-step000002.jsonl"]
    rows = [json.loads(line) for line in generations[0].read_text().splitlines()]
    assert len(rows) == 4 and len({r["prompt"] for r in rows}) == 4
    assert all(set(r["aspects"]) == set(ASPECTS[task]) and r["reference"] for r in rows)
    if task == "mt":
        assert all(r["prompt"].startswith("translate Spanish to English: ") for r in rows)
    else:
        assert all(r["prompt"].startswith("question: ") and "context: wikipage: " in r["prompt"] for r in rows)
