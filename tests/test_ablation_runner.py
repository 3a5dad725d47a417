"""The ablation's plan (systems, command lines) and runner (markers, resume, failures, parallel runs), with stand-in
runs that write a generation file in a fraction of a second; the real command runs in test_ablation_cli.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from alarm_pl.ablation.cli import split_overrides
from alarm_pl.ablation.plan import START, command, parse_sweep, plan_runs, systems
from alarm_pl.ablation.runner import MARKER, SweepMismatch, child_environment, run_all

FAKE_RUN = """
import json, os, sys, time
out, name = sys.argv[1], sys.argv[2]
if os.path.exists(os.path.join(os.path.dirname(out), "..", "fail-" + name.replace("/", "_"))):
    sys.exit(3)
os.makedirs(out)
with open(os.path.join(out, "test-step000002.jsonl"), "w") as f:
    f.write(json.dumps({"prompt": "p", "generation": name, "holistic": 0.5, "length": 1}) + "\\n")
with open(os.path.join(out, "..", "ran-at"), "w") as f:
    f.write(str(time.time()))
"""


def test_systems_and_commands():
    sweep = parse_sweep("model.selection.mode=fixed,auto")
    assert [name for name, _ in systems(["aspect_only", "hierarchical"], [sweep])] == [
        "aspect_only,mode=fixed",
        "aspect_only,mode=auto",
        "hierarchical,mode=fixed",
        "hierarchical,mode=auto",
    ]
    runs = plan_runs(["hierarchical"], [3, 4], [sweep], Path("/out"), baseline=True)
    assert [r.name for r in runs] == [
        START,
        "hierarchical,mode=fixed/seed3",
        "hierarchical,mode=auto/seed3",
        "hierarchical,mode=fixed/seed4",
        "hierarchical,mode=auto/seed4",
    ]
    assert runs[2].directory == Path("/out/runs/hierarchical-mode=auto/seed3")
    cmd = command(runs[2], "configs/x.yaml", ["--trainer.max_steps", "20", "--model.reward.strategy", "weighted_sum"])
    assert cmd[1:5] == ["-m", "alarm_pl", "fit", "--config"]
    # the system's overrides come after the user's, so the sweep decides the strategy; the test is the run's own
    assert cmd.index("weighted_sum") < cmd.index("hierarchical") and cmd[-2:] == ["--test_after_fit", "true"]
    assert cmd[cmd.index("--seed_everything") + 1] == "3" and "auto" in cmd
    logger = json.loads(cmd[cmd.index("--trainer.logger") + 1])
    assert logger["init_args"]["save_dir"] == "/out/runs/hierarchical-mode=auto/seed3"
    start = command(runs[0], "configs/x.yaml", [])
    assert start[3] == "test" and "--test_after_fit" not in start and "--model.reward.strategy" not in start


@pytest.mark.parametrize(
    "text,message",
    [
        ("model.ppo.lam", "KEY=V1,V2"),
        ("=a,b", "KEY=V1,V2"),
        ("model.ppo.lam=1,", "KEY=V1,V2"),
        ("model.reward.strategy=a,b", "--strategies"),
    ],
)
def test_bad_sweeps_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_sweep(text)


def test_bad_strategies_and_seeds_are_refused():
    with pytest.raises(ValueError, match="unknown.*holistic"):
        systems(["holistic"], [])
    with pytest.raises(ValueError, match="distinct"):
        plan_runs(["aspect_only"], [1, 1], [], Path("/out"), baseline=False)


def test_split_overrides():
    assert split_overrides(["--out", "d", "--", "--trainer.max_steps", "2", "--", "x"]) == (
        ["--out", "d"],
        ["--trainer.max_steps", "2", "--", "x"],
    )
    assert split_overrides(["--out", "d"]) == (["--out", "d"], [])


def _commands(runs, extra=""):
    return {
        r.name: [sys.executable, "-c", FAKE_RUN, str(r.generations_dir), r.name, *([extra] if extra else [])]
        for r in runs
    }


def test_resume_reuses_finished_runs_and_redoes_the_rest(tmp_path):
    runs = plan_runs(["holistic_only", "hierarchical"], [0, 1], [], tmp_path, baseline=True)
    (tmp_path / "runs" / "hierarchical").mkdir(parents=True)
    (tmp_path / "runs" / "hierarchical" / "fail-hierarchical_seed1").touch()
    seen = []
    first = run_all(runs, _commands(runs), parallel=2, on_outcome=lambda o, done, total: seen.append((done, total)))
    assert {o.run.name: o.status for o in first} == {
        START: "ran",
        "holistic_only/seed0": "ran",
        "hierarchical/seed0": "ran",
        "holistic_only/seed1": "ran",
        "hierarchical/seed1": "failed",
    }
    failed = first[-1]
    assert "exit status 3" in failed.error and not (failed.run.directory / MARKER).exists()
    assert sorted(seen) == [(i, 5) for i in range(1, 6)]
    marker = json.loads((runs[1].directory / MARKER).read_text())
    assert marker["records"] == 1 and marker["test_file"] == "generations/test-step000002.jsonl"
    assert marker["wall_s"] > 0 and marker["cpu_s"] >= 0

    (tmp_path / "runs" / "hierarchical" / "fail-hierarchical_seed1").unlink()
    (runs[2].directory / MARKER).unlink()  # hierarchical/seed0 interrupted after its test, before its marker
    stamp = (runs[1].directory / "ran-at").read_text()
    second = run_all(runs, _commands(runs), parallel=1)
    assert {o.run.name: o.status for o in second} == {
        START: "reused",
        "holistic_only/seed0": "reused",
        "hierarchical/seed0": "ran",
        "holistic_only/seed1": "reused",
        "hierarchical/seed1": "ran",
    }
    assert (runs[1].directory / "ran-at").read_text() == stamp  # a finished run is not touched
    assert second[1].wall_s == marker["wall_s"]  # its cost comes from its marker

    (runs[3].generations_dir / "test-step000002.jsonl").write_text("{}\n")  # a finished file changed afterwards
    assert [o.status for o in run_all(runs, _commands(runs), parallel=1)][3] == "ran"
    with pytest.raises(SweepMismatch, match="another command line"):
        run_all(runs, _commands(runs, extra="--changed"), parallel=1)


def test_resume_refuses_runs_of_an_edited_configuration(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed_everything: 0\n")
    runs = plan_runs(["hierarchical"], [0], [], tmp_path, baseline=False)
    commands = {name: [*cmd, "--config", str(config)] for name, cmd in _commands(runs).items()}
    assert [o.status for o in run_all(runs, commands, parallel=1)] == ["ran"]
    assert [o.status for o in run_all(runs, commands, parallel=1)] == ["reused"]
    config.write_text("seed_everything: 1\n")
    with pytest.raises(SweepMismatch, match="c.yaml changed"):
        run_all(runs, commands, parallel=1)


def test_parallel_runs_share_out_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert child_environment(3)["OMP_NUM_THREADS"] == "2" and "OMP_NUM_THREADS" not in child_environment(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert child_environment(3)["OMP_NUM_THREADS"] == "4"  # the user's setting wins
