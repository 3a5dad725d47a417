"""Exact resume with real processes and real signals (DESIGN.md, 'Resume'): a run of 6 rollouts, and the same run
killed with SIGKILL after rollout 1 (inside the first epoch, before online selection first decides after rollout 2),
resumed with ``--ckpt_path last``, killed with SIGKILL after rollout 3 (an epoch's end: 3 rollouts an epoch), resumed,
stopped with SIGTERM (preemption) during rollout 5, and resumed to the end, give bit-identical trainable weights and
the same logged metrics for every rollout (rewards, losses, KL, selection, epoch). The same with two DDP processes."""

from __future__ import annotations

import signal

import pytest
import torch
from resume_helpers import (
    DOWN_AT,
    FlakyReference,
    callbacks,
    fit_command,
    last_checkpoint,
    run,
    run_until_paused,
    train_rows,
    trainable_weights,
)

ROLLOUTS = 6
SECRET = "hf_5ecret-DO-NOT-LEAK-0123456789"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    result = run(fit_command(root, "--trainer.max_steps", str(ROLLOUTS), *callbacks()))
    assert result.returncode == 0, result.stderr[-4000:]
    return root


def assert_same_run(resumed, reference) -> None:
    rows, expected = train_rows(resumed), train_rows(reference)
    assert sorted(rows) == sorted(expected) == list(range(ROLLOUTS))  # every rollout logged once
    for step, row in expected.items():
        differing = {
            k: (row.get(k), rows[step].get(k)) for k in set(row) | set(rows[step]) if row.get(k) != rows[step].get(k)
        }
        assert not differing, f"rollout {step + 1} differs (uninterrupted, resumed): {differing}"
    weights, reference_weights = (
        trainable_weights(last_checkpoint(resumed)),
        trainable_weights(last_checkpoint(reference)),
    )
    assert weights.keys() == reference_weights.keys() and weights
    for name, value in reference_weights.items():
        assert torch.equal(weights[name], value), f"{name} differs after resuming"


def test_killed_and_preempted_run_repeats_the_uninterrupted_one(uninterrupted, tmp_path):
    root, marker = tmp_path / "run", tmp_path / "paused"
    command = fit_command(root, "--trainer.max_steps", str(ROLLOUTS))
    killed = run_until_paused(command + callbacks(1, str(marker)), marker, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and last_checkpoint(root)["global_step"] == 1
    marker.unlink()
    resumed = command + ["--ckpt_path", "last"]
    killed = run_until_paused(resumed + callbacks(3, str(marker)), marker, signal.SIGKILL)  # at the epoch's end
    assert killed.returncode == -signal.SIGKILL and last_checkpoint(root)["global_step"] == 3
    marker.unlink()
    # SIGTERM while paused before rollout 5: Lightning finishes rollout 5, then stops with last.ckpt
    stopped = run_until_paused(resumed + callbacks(4, str(marker)), marker, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-4000:]
    assert "SIGTERM: saved" in stopped.stderr and last_checkpoint(root)["global_step"] == 5
    finished = run(resumed + callbacks())
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert_same_run(root, uninterrupted)
    rows = train_rows(root)  # rollout 1 by the first process, rollout 2 (the first decision) by the second
    assert [rows[0]["train/selection/warmup"], rows[1]["train/selection/warmup"]] == ["1.0", "0.0"]
    assert [rows[step]["epoch"] for step in (2, 3)] == ["0", "1"]  # no empty epoch after the boundary


DDP = ("--trainer.strategy", "ddp", "--trainer.devices", "2", "--data.init_args.batch_size", "4")


def test_two_ddp_processes_killed_and_resumed_repeat_the_uninterrupted_run(tmp_path):
    """Gloo on CPU; each process takes its 12 prompts an epoch in batches of 4. SIGKILL to both after rollout 4 (inside
    the second epoch)."""
    reference, root, marker = tmp_path / "reference", tmp_path / "run", tmp_path / "paused"
    result = run(fit_command(reference, "--trainer.max_steps", str(ROLLOUTS), *DDP, *callbacks()))
    assert result.returncode == 0, result.stderr[-4000:]
    command = fit_command(root, "--trainer.max_steps", str(ROLLOUTS), *DDP)
    killed = run_until_paused(command + callbacks(4, str(marker)), marker, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and last_checkpoint(root)["global_step"] == 4
    finished = run(command + callbacks() + ["--ckpt_path", "last"])
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert_same_run(root, reference)
    assert len(last_checkpoint(root)["callbacks"]["ResumeState"]["states"]) == 2  # one random state per process


def test_a_truncated_or_foreign_configuration_checkpoint_is_refused_by_fit(uninterrupted, tmp_path):
    """The real entry point: a half-written file and a checkpoint of another adapter shape end with a non-zero exit
    and a last line that names the file and what differs."""
    checkpoint = next((uninterrupted / "logs").glob("version_*/checkpoints/last.ckpt"))
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:4096])
    command = fit_command(tmp_path / "run", "--trainer.max_steps", str(ROLLOUTS + 1))
    result = run(command + ["--ckpt_path", str(truncated)])
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and str(truncated) in last_line and "truncated, corrupt" in last_line, last_line
    result = run(command + ["--ckpt_path", str(checkpoint), "--model.policy.lora_r", "8"])
    last_line = result.stderr.strip().splitlines()[-1]
    assert (
        result.returncode != 0
        and 'comes from a different configuration: adapter: checkpoint "LoRA r=16' in last_line
        and 'this run "LoRA r=8' in last_line
    ), last_line


def test_a_scorer_server_that_goes_away_stops_with_a_checkpoint_and_the_run_resumes_exactly(uninterrupted, tmp_path):
    """The holistic scorer's server is down from its third call (rollout 2's scoring: rollout 1 scores sampled and
    greedy responses): the run stops, names the URL and saves the state after rollout 1; once the server is back,
    ``--ckpt_path last`` repeats the uninterrupted run. Tokens in the environment appear in no file the runs write."""
    root = tmp_path / "run"
    command = fit_command(root, "--trainer.max_steps", str(ROLLOUTS))
    secrets = {"HF_TOKEN": SECRET, "OPENAI_API_KEY": SECRET}  # in the environment, as on a cluster
    failed = run(command + callbacks(), **{DOWN_AT: "3"}, **secrets)
    last_line = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode != 0 and FlakyReference.URL in failed.stderr, failed.stderr[-4000:]
    assert "resume with --ckpt_path" in last_line and last_line.endswith("last.ckpt"), last_line
    assert last_checkpoint(root)["global_step"] == 1 and sorted(train_rows(root)) == [0]
    finished = run(command + callbacks() + ["--ckpt_path", "last"], **secrets)
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert_same_run(root, uninterrupted)
    written = [path for path in root.rglob("*") if path.is_file()]
    assert len(written) > 5 and not [path for path in written if SECRET.encode() in path.read_bytes()]
