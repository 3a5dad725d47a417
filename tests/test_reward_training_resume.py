"""Reward-model training resumes exactly, with real processes and a real SIGKILL: 256 separable preference pairs in
batches of 16 (16 steps an epoch), a GPT-2 sequence classifier with dropout on, killed after step 5's checkpoint and
resumed with ``--ckpt_path last``, ends at step 20 (inside the second epoch) with the weights and the per-step losses
of the uninterrupted run."""

from __future__ import annotations

import signal
from pathlib import Path

from resume_helpers import (
    assert_resumed_like_uninterrupted,
    base_fit_command,
    callbacks,
    last_checkpoint,
    run,
    run_until_paused,
)
from test_reward_training import TEMPLATE, _save_model, _separable_pairs

from alarm_pl.data.preferences import write_preferences

STEPS = 20


def rm_command(root: Path, data: Path) -> list[str]:
    return [
        *base_fit_command("tiny_rm.yaml", root),
        "--model.reward_model.model_name_or_path",
        str(data / "start"),
        "--model.template",
        TEMPLATE,
        "--data",
        "alarm_pl.data.preferences.PreferenceDataModule",
        "--data.train_file",
        str(data / "train.jsonl"),
        "--data.val_file",
        str(data / "val.jsonl"),
        "--data.batch_size",
        "16",
        "--trainer.max_steps",
        str(STEPS),
        "--trainer.max_epochs",
        "-1",
        "--trainer.val_check_interval",
        "8",
        "--trainer.log_every_n_steps",
        "1",
    ]


def test_a_killed_reward_model_run_resumes_to_the_uninterrupted_weights_and_losses(tmp_path):
    data = tmp_path / "data"
    _save_model(data / "start")
    write_preferences(data / "train.jsonl", _separable_pairs(256, 11))
    write_preferences(data / "val.jsonl", _separable_pairs(32, 12))

    reference = tmp_path / "uninterrupted"
    done = run(rm_command(reference, data) + callbacks())
    assert done.returncode == 0, done.stderr[-4000:]

    root, marker = tmp_path / "run", tmp_path / "paused"
    killed = run_until_paused(rm_command(root, data) + callbacks(5, str(marker)), marker, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and last_checkpoint(root)["global_step"] == 5
    finished = run(rm_command(root, data) + ["--ckpt_path", "last"] + callbacks())
    assert finished.returncode == 0, finished.stderr[-4000:]

    assert_resumed_like_uninterrupted(root, reference, STEPS)
