"""Test-only pieces of the resume tests (tests/test_resume.py): a callback that pauses a run once the checkpoint of a
given rollout is on disk (so the test can kill it with a real signal), and the reading of a run's logs."""

from __future__ import annotations

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml

from alarm_pl.rewards.aspects.reference import ReferenceScorer
from alarm_pl.rewards.base import ScorerUnavailable

ROOT = Path(__file__).parents[1]
READY = "paused"


class PauseAfterCheckpoint(pl.Callback):
    """At the start of rollout ``after + 1`` — the checkpoint of rollout ``after`` is then written — create
    ``<marker>`` and wait for a signal: SIGKILL ends the process here; after SIGTERM Lightning finishes the rollout,
    and stops."""

    def __init__(self, after: int, marker: str, timeout: float = 300.0) -> None:
        self.after, self.marker, self.timeout = after, marker, timeout

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.after:
            return
        if trainer.is_global_zero:
            Path(self.marker).write_text(str(os.getpid()))
        deadline = time.monotonic() + self.timeout
        while not trainer.received_sigterm:
            if time.monotonic() > deadline:
                raise TimeoutError(f"PauseAfterCheckpoint: no signal came within {self.timeout} s")
            time.sleep(0.02)


DOWN_AT = "ALARM_PL_TEST_SCORER_DOWN_AT"
"""Environment variable: the call of ``FlakyReference.score`` (1-based, in this process) from which its server is
down."""


class FlakyReference(ReferenceScorer):
    """tiny_mt's chrF holistic scorer whose (pretend) server goes away from call ``$ALARM_PL_TEST_SCORER_DOWN_AT`` of
    this process on: it then raises what a remote scorer raises after its last retry (``ScorerUnavailable``)."""

    URL = "http://127.0.0.1:9/score"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def score(self, inputs):
        self.calls += 1
        if os.environ.get(DOWN_AT) and self.calls >= int(os.environ[DOWN_AT]):
            raise ScorerUnavailable(
                f"scorer {self.name!r}: request to {self.URL} failed after 3 attempt(s): connection refused"
            )
        return super().score(inputs)


def _flaky_holistic() -> str:
    holistic = yaml.safe_load((ROOT / "configs" / "tiny_mt.yaml").read_text())["model"]["init_args"]["holistic"]
    return json.dumps({**holistic, "class_path": "tests.resume_helpers.FlakyReference"})


HOLISTIC = _flaky_holistic()
"""tiny_mt.yaml's holistic scorer (same metric and normaliser) as a ``FlakyReference``."""


def base_fit_command(config: str, root: Path) -> list[str]:
    """``python -m alarm_pl fit --config configs/<config>`` writing under ``root``, its metrics flushed every step (a
    killed run keeps what it logged), without progress bar or model summary."""
    return [
        sys.executable,
        "-m",
        "alarm_pl",
        "fit",
        "--config",
        str(ROOT / "configs" / config),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.logger.init_args.save_dir",
        str(root),
        "--trainer.logger.init_args.flush_logs_every_n_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    ]


def fit_command(root: Path, *args: str) -> list[str]:
    """``python -m alarm_pl fit`` on the tiny MT config, shrunk: 24 training prompts in batches of 8 (3 rollouts an
    epoch), 8 new tokens, the holistic scorer a ``FlakyReference`` (up unless told otherwise), online selection deciding
    after rollout 2 and again every 2, validation every 2 rollouts, metrics flushed every rollout (a killed run keeps
    what it logged)."""
    return [
        *base_fit_command("tiny_mt.yaml", root),
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.num_train",
        "24",
        "--data.init_args.num_val",
        "8",
        "--model.generation.max_new_tokens",
        "8",
        "--model.selection.mode",
        "online",
        "--model.selection.warmup_rollouts",
        "2",
        "--model.selection.reselect_every",
        "2",
        "--model.selection.min_pairs",
        "1",
        "--trainer.val_check_interval",
        "2",
        "--model.holistic",
        HOLISTIC,
        *args,
    ]


def callbacks(pause_after: int | None = None, marker: str = "") -> list[str]:
    """``--trainer.callbacks``: a checkpoint after every rollout, and optionally the pause."""
    items = ['{"class_path": "alarm_pl.checkpointing.RunCheckpoint", "init_args": {"every_n_train_steps": 1}}']
    if pause_after is not None:
        items.append(
            '{"class_path": "tests.resume_helpers.PauseAfterCheckpoint", "init_args": '
            f'{{"after": {pause_after}, "marker": "{marker}"}}}}'
        )
    return ["--trainer.callbacks", "[" + ", ".join(items) + "]"]


def environment(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **extra,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def run(command: list[str], timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=environment(**env), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def run_until_paused(command: list[str], marker: Path, sig: int, timeout: float = 600) -> subprocess.CompletedProcess:
    """Start ``command`` in its own process group, wait for ``marker``, send ``sig`` to the whole group (DDP ranks
    included) and wait for the end."""
    process = subprocess.Popen(
        command,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL) if process.poll() is None else None
            out, err = process.communicate()
            raise AssertionError(f"the run ended before pausing (rc {process.returncode}):\n{err[-4000:]}")
        time.sleep(0.05)
    os.killpg(process.pid, sig) if sig == signal.SIGKILL else os.kill(process.pid, sig)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def metrics_files(root: Path) -> list[str]:
    """The ``metrics.csv`` of every run under ``root``, in the order the runs were made (``version_0``, ``_1``, …)."""
    return sorted(
        glob.glob(str(root / "logs" / "version_*" / "metrics.csv")),
        key=lambda p: int(Path(p).parent.name.split("_")[1]),
    )


def train_rows(root: Path) -> dict[int, dict[str, str]]:
    """Every logged rollout of the runs under ``root`` by step (later runs' rows after earlier ones'), without the
    wall-clock timings."""
    rows: dict[int, dict[str, str]] = {}
    for path in metrics_files(root):
        for row in csv.DictReader(open(path)):
            if row.get("train/kl"):
                rows[int(row["step"])] = {k: v for k, v in row.items() if v and not k.startswith("train/time/")}
    return rows


def last_checkpoint(root: Path) -> dict:
    paths = glob.glob(str(root / "logs" / "version_*" / "checkpoints" / "last.ckpt"))
    newest = max(paths, key=os.path.getmtime)
    return torch.load(newest, weights_only=True)


def trainable_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in checkpoint["state_dict"].items() if "lora_" in k or "value_head" in k}


def logged_steps(root: Path) -> dict[int, dict[str, str]]:
    """The ``train/*`` metrics and epoch of every logged training step of the runs under ``root`` (SFT, reward-model
    training: steps that logged ``train/loss``; later runs' rows after earlier ones')."""
    rows: dict[int, dict[str, str]] = {}
    for path in metrics_files(root):
        for row in csv.DictReader(open(path)):
            if row.get("train/loss"):
                rows[int(row["step"])] = {k: v for k, v in row.items() if v and k.startswith(("train/", "epoch"))}
    return rows


def assert_resumed_like_uninterrupted(resumed: Path, reference: Path, steps: int) -> None:
    """Every step ``0 .. steps − 1`` logged the same ``train/*`` values and epoch in both runs, and their last
    checkpoints hold the same step and bit-identical weights (every saved weight)."""
    rows, expected = logged_steps(resumed), logged_steps(reference)
    assert sorted(expected) == list(range(steps)) and rows == expected
    last, reference_last = last_checkpoint(resumed), last_checkpoint(reference)
    assert last["global_step"] == reference_last["global_step"] == steps
    weights, reference_weights = last["state_dict"], reference_last["state_dict"]
    assert weights.keys() == reference_weights.keys() and weights
    for name, value in reference_weights.items():
        assert torch.equal(weights[name], value), f"{name} differs after resuming"
