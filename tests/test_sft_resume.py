"""The SFT stage resumes exactly, with real processes and a real SIGKILL: tiny_sft.yaml shrunk to 6 optimizer steps
(20 examples in batches of 8 with ``drop_last``: 2 steps an epoch, 4 examples left out; validation every 3 steps),
killed after step 2's checkpoint (the first epoch's last batch: the case that used to resume into an empty epoch),
resumed with ``--ckpt_path last``, ends with the same weights — every weight: SFT fine-tunes the whole model — and
logs the same training loss and epoch at every step as the uninterrupted run."""

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

STEPS = 6


def sft_command(root: Path) -> list[str]:
    return [
        *base_fit_command("tiny_sft.yaml", root),
        "--trainer.log_every_n_steps",
        "1",
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


def test_a_killed_sft_run_resumes_to_the_uninterrupted_weights_and_losses(tmp_path):
    reference = tmp_path / "uninterrupted"
    done = run(sft_command(reference) + callbacks())
    assert done.returncode == 0, done.stderr[-4000:]

    root, marker = tmp_path / "run", tmp_path / "paused"
    killed = run_until_paused(sft_command(root) + callbacks(2, str(marker)), marker, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and last_checkpoint(root)["global_step"] == 2
    finished = run(sft_command(root) + ["--ckpt_path", "last"] + callbacks())
    assert finished.returncode == 0, finished.stderr[-4000:]

    assert_resumed_like_uninterrupted(root, reference, STEPS)
    assert len(last_checkpoint(root)["state_dict"]) > 10  # the whole model, not an adapter
