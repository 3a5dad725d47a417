"""The ablation command end to end, through the real entry point and real training runs: a tiny sweep (2 strategies
× 2 seeds, 2 rollouts of 4 prompts, plus the starting policy), its report, and a resume after one run's marker is
deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from alarm_pl.ablation.stats import t_interval
from alarm_pl.eval.records import read_generations

ROOT = Path(__file__).parents[1]
OVERRIDES = [
    "--trainer.max_steps",
    "2",
    "--data.init_args.batch_size",
    "4",
    "--data.init_args.num_test",
    "6",
    "--model.generation.max_new_tokens",
    "8",
    "--model.selection.mode",
    "fixed",
    "--model.selection.aspects",
    "[spelling]",
    # tiny_mt's lr (3e-4) leaves the greedy output of 6 test prompts unchanged after 2 rollouts of 4 prompts, and
    # win rates against the starting policy are all ties (undefined); this sweep must move the policies
    "--model.optimizer.init_args.lr",
    "0.01",
]


def _sweep(out: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "alarm_pl.ablation",
        "--config",
        str(ROOT / "configs" / "tiny_mt.yaml"),
        "--strategies",
        "holistic_only",
        "hierarchical",
        "--seeds",
        "0",
        "1",
        "--out",
        str(out),
        "--parallel",
        "3",
        "--",
        *OVERRIDES,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_sweep_report_and_resume(tmp_path):
    out = tmp_path / "sweep"
    done = _sweep(out)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["systems"] == ["holistic_only", "hierarchical", "start"]
    assert results["cost"]["ran"] == 5 and results["compared_seeds"] == [0, 1]
    for system in ("holistic_only", "hierarchical"):
        files = [out / "runs" / system / f"seed{seed}" / "generations" / "test-step000002.jsonl" for seed in (0, 1)]
        records = [read_generations(f) for f in files]
        assert all(len(r) == 6 and r[0].run["step"] == 2 for r in records)  # tested on its own final weights
        chrf = [sacrebleu.corpus_chrf([x.generation for x in r], [[x.reference for x in r]]).score for r in records]
        expected = t_interval(chrf)
        got = results["metrics"][system]["chrf"]
        assert (got["mean"], got["ci_low"], got["ci_high"], got["n"]) == pytest.approx(
            (expected.mean, expected.low, expected.high, 2)
        )
    assert results["metrics"]["start"]["chrf"]["n"] == 1 and results["metrics"]["start"]["chrf"]["ci_low"] is None
    assert {"holistic", "spelling", "sentence_chrf", "sentence_bleu"} <= set(results["win_rates"])
    table = results["win_rates"]["holistic"]
    assert set(table["pairs"]["hierarchical"]) == {"holistic_only", "start"} and table["avg"]["start"]["n"] == 2
    report = (out / "report.md").read_text()
    assert "Student-t" in report and "Avg. [CI]" in report and "## Cost" in report
    for name in ("metrics.png", "winrate_holistic.png", "compare/seed0/report.md", "compare/seed1/results.json"):
        assert (out / name).is_file(), name

    marker = out / "runs" / "hierarchical" / "seed1" / "done.json"
    marker.unlink()  # as if the sweep had been killed after this run's test, before its marker
    logs = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/log.txt")} | {
        out / "runs/start/log.txt": (out / "runs/start/log.txt").stat().st_mtime_ns
    }
    again = _sweep(out)
    assert again.returncode == 0, again.stderr[-3000:]
    statuses = {
        name: run["status"] for name, run in json.loads((out / "results.json").read_text())["cost"]["runs"].items()
    }
    assert statuses == {
        "start": "reused",
        "holistic_only/seed0": "reused",
        "hierarchical/seed0": "reused",
        "holistic_only/seed1": "reused",
        "hierarchical/seed1": "ran",
    }
    changed = {p.relative_to(out).as_posix() for p, t in logs.items() if p.stat().st_mtime_ns != t}
    assert changed == {"runs/hierarchical/seed1/log.txt"} and marker.is_file()
