"""The SFT stage resumes exactly, with real processes and a real SIGKILL: tiny_sft.yaml shrunk to 6 optimizer steps
(20 examples in batches of 8: 3 steps an epoch, the last batch short; validation every 3 steps), killed after step 2's
checkpoint (inside the first epoch, before its short batch), resumed with ``--ckpt_path last``, ends with the same
weights — every weight: SFT fine-tunes the whole model — and logs the same training loss at every step as the
uninterrupted run."""

from __future__ import annotations

import csv
import glob
import signal
import sys
from pathlib import Path

import torch
from resume_helpers import ROOT, callbacks, last_checkpoint, run, run_until_paused

STEPS = 6


def sft_command(root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "alarm_pl",
        "fit",
        "--config",
        str(ROOT / "configs" / "tiny_sft.yaml"),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.logger.init_args.save_dir",
        str(root),
        "--trainer.logger.init_args.flush_logs_every_n_steps",
        "1",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.max_steps",
        str(STEPS),
        "--trainer.val_check_interval",
        "3",
        "--data.init_args.num_train",
        "20",
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.num_val",
        "8",
        "--data.init_args.num_test",
        "8",
    ]


def loss_rows(root: Path) -> dict[int, dict[str, str]]:
    """Every logged training step of the runs under ``root`` (later runs' rows after earlier ones')."""
    rows: dict[int, dict[str, str]] = {}
    for path in sorted(glob.glob(str(root / "logs" / "version_*" / "metrics.csv"))):
        for row in csv.DictReader(open(path)):
            if row.get("train/loss"):
                rows[int(row["step"])] = {k: v for k, v in row.items() if v and k.startswith(("train/", "epoch"))}
    return rows


def test_a_killed_sft_run_resumes_to_the_uninterrupted_weights_and_losses(tmp_path):
    reference = tmp_path / "uninterrupted"
    done = run(sft_command(reference) + callbacks())
    assert done.returncode == 0, done.stderr[-4000:]

    root, marker = tmp_path / "run", tmp_path / "paused"
    killed = run_until_paused(sft_command(root) + callbacks(2, str(marker)), marker, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and last_checkpoint(root)["global_step"] == 2
    finished = run(sft_command(root) + ["--ckpt_path", "last"] + callbacks())
    assert finished.returncode == 0, finished.stderr[-4000:]

    rows, expected = loss_rows(root), loss_rows(reference)
    assert sorted(expected) == list(range(STEPS)) and rows == expected
    weights, reference_weights = last_checkpoint(root)["state_dict"], last_checkpoint(reference)["state_dict"]
    assert last_checkpoint(root)["global_step"] == STEPS and weights.keys() == reference_weights.keys()
    assert len(weights) > 10  # the whole model, not an adapter
    for name, value in reference_weights.items():
        assert torch.equal(weights[name], value), f"{name} differs after resuming"
