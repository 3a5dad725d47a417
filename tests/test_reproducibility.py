"""Same command, same seed, same result — first run or not: building the tiny assets on the first run (an empty
``ALARM_PL_CACHE``) must not consume the caller's random draws (``assets/tiny.py`` runs the build inside
``preserved_rng_states``). Without that, the first README run logged val chrF 59.8 and every later one 56.5.

Validation must not change what training does either: a run that validates every rollout trains exactly as one that
never validates (the evaluation loaders draw nothing from torch's global generator, ``data.prompts.evaluation_loader``).
Before, each validation shifted every later rollout's samples: in the ablation sweep (validation at rollout 50) the
same seed trained differently from the README's runs (validation off).
"""

import csv
from pathlib import Path

from alarm_pl.cli import cli_main

CONFIG = str(Path(__file__).parents[1] / "configs" / "tiny_mt.yaml")


def _fit(root: Path, *overrides: str) -> list[dict]:
    cli_main(
        [
            "fit",
            "--config",
            CONFIG,
            "--trainer.default_root_dir",
            str(root),
            "--trainer.logger.init_args.save_dir",
            str(root),
            "--trainer.enable_checkpointing",
            "false",
            "--trainer.max_steps",
            "2",
            "--trainer.val_check_interval",
            "2",
            "--data.init_args.batch_size",
            "8",
            "--data.init_args.num_val",
            "8",
            "--model.generation.max_new_tokens",
            "12",
            "--model.selection.num_prompts",
            "8",
            "--model.selection.min_pairs",
            "1",
            *overrides,
        ]
    )
    rows = list(csv.DictReader(open(root / "logs" / "version_0" / "metrics.csv")))
    return [{k: v for k, v in row.items() if "/time/" not in k} for row in rows]  # wall-clock times differ


def test_the_run_that_builds_the_assets_logs_what_later_runs_log(tmp_path, monkeypatch):
    monkeypatch.setenv("ALARM_PL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("sys.argv", ["alarm_pl"])
    first = _fit(tmp_path / "first")  # builds tiny:mt-seq2seq (tokenizer, model, supervised warm start)
    assert any((tmp_path / "cache" / "tiny").glob("mt-seq2seq-*"))
    second = _fit(tmp_path / "second")  # the cache is warm now
    assert len(first) >= 3 and any(row.get("val/chrf") for row in first)  # two rollouts and a validation
    assert first == second


def test_validation_does_not_change_what_training_does(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["alarm_pl"])
    steps = ["--trainer.max_steps", "4"]
    validated = _fit(tmp_path / "validated", *steps, "--trainer.val_check_interval", "1")
    unvalidated = _fit(tmp_path / "unvalidated", *steps, "--trainer.val_check_interval", "1000")

    def training(rows: list[dict]) -> list[dict]:
        return [
            {k: v for k, v in row.items() if k.startswith("train/") or k == "step"} for row in rows if row["train/kl"]
        ]

    assert sum(bool(row.get("val/chrf")) for row in validated) == 4 and not any(r.get("val/chrf") for r in unvalidated)
    assert len(training(validated)) == 4
    assert training(validated) == training(unvalidated)
