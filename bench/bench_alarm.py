"""Benchmark alarm_pl's PPO loop: per-phase seconds, episodes/s, response tokens/s and peak RSS of a config.

Runs the trainer in-process through ``alarm_pl.cli.cli_main`` (the same parser as ``python -m alarm_pl fit``), for
``--warmup`` + ``--rollouts`` rollouts, and measures only the last ``--rollouts``. Per-phase seconds are the module's
own logged ``train/time/{generate,reference,score,update}``; a rollout's total is the wall time between two
consecutive ``on_train_batch_end`` hooks, so it also counts data loading, reward composition and logging.

Usage (see bench/README.md):
    ALARM_PL_CACHE=/tmp/alarm_cache python bench/bench_alarm.py --config configs/bench_causal.yaml
    python bench/bench_alarm.py --config configs/tiny_mt.yaml --rollouts 5 -- --model.ppo.ppo_epochs 2
Anything after ``--`` is passed on to the CLI as overrides.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import PhaseCpuClock, RolloutTiming, report, summarise  # noqa: E402


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/bench_causal.yaml", help="trainer YAML (default: %(default)s)")
    parser.add_argument("--rollouts", type=int, default=10, help="measured rollouts (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="rollouts run before measuring (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the CSV logs (default: a temp dir, removed)")
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.rollouts < 1 or args.warmup < 0:
        parser.error("--rollouts must be >= 1 and --warmup >= 0")
    return args, overrides


def instrument(module, clock: PhaseCpuClock) -> None:
    """Count CPU seconds per phase by wrapping the calls that make up each phase of ``make_rollout`` and the update
    (the module's own ``train/time/*`` timers give the wall seconds)."""
    import torch

    policy = module.policy
    clock.wrap(policy, "tokenize_prompts", "generate")
    clock.wrap(policy, "generate", "generate")
    clock.wrap(policy, "generate_with_scores", "generate")
    clock.wrap(policy, "forward", lambda: None if torch.is_grad_enabled() else "reference")  # old log-probs + values
    clock.wrap(policy, "reference_logprobs", "reference")
    clock.wrap(module, "_decode_and_score", "score")
    clock.wrap(module, "ppo_update", "update")


def make_timer_callback(clock: PhaseCpuClock):
    """A Lightning callback collecting one ``RolloutTiming`` per training step (defined here: lightning is heavy)."""
    import lightning.pytorch as pl

    class RolloutTimer(pl.Callback):
        """Records per-phase seconds from the logged ``train/time/*`` metrics, the wall and CPU time per rollout and
        the CPU seconds per phase of ``clock``."""

        def __init__(self) -> None:
            self.rollouts: list[RolloutTiming] = []
            self._last: float | None = None
            self._last_cpu: float | None = None

        def on_train_start(self, trainer, pl_module) -> None:
            instrument(pl_module, clock)
            self._last, self._last_cpu = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
            now, now_cpu = time.perf_counter(), time.process_time()
            metrics = trainer.callback_metrics
            phases = {
                key.rsplit("/", 1)[-1]: float(value) for key, value in metrics.items() if key.startswith("train/time/")
            }
            episodes = len(batch)
            tokens = round(float(metrics.get("train/response_length", 0.0)) * episodes)
            self.rollouts.append(
                RolloutTiming(now - self._last, phases, episodes, tokens, now_cpu - self._last_cpu, clock.take())
            )
            self._last, self._last_cpu = now, now_cpu

    return RolloutTimer()


def run(config: str, rollouts: int, warmup: int, overrides: list[str], log_dir: str) -> list[RolloutTiming]:
    """Fit ``config`` for ``warmup + rollouts`` rollouts; returns the measured (post-warm-up) rollouts.

    Args:
        config: path of the trainer YAML.
        rollouts, warmup: measured and discarded rollouts.
        overrides: extra CLI arguments (``--model.ppo.ppo_epochs 2`` …).
        log_dir: where the CSV logger writes.
    """
    from alarm_pl.cli import cli_main

    args = [
        "--config",
        config,
        "--trainer.max_steps",
        str(warmup + rollouts),
        "--trainer.default_root_dir",
        log_dir,
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        log_dir,
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.enable_checkpointing",
        "false",
        *overrides,
    ]
    cli = cli_main(args=args, run=False)
    timer = make_timer_callback(PhaseCpuClock())
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if len(timer.rollouts) != warmup + rollouts:
        raise RuntimeError(
            f"{config}: expected {warmup + rollouts} rollouts, the trainer ran {len(timer.rollouts)} "
            "(does the train set hold enough batches for one epoch, or is max_epochs limiting?)"
        )
    return timer.rollouts[warmup:]


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run, print the table and the ``BENCH_JSON`` line; returns the summary."""
    args, overrides = _parse(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_alarm_") as tmp:
        log_dir = str(Path("runs/bench_alarm").resolve()) if args.keep_logs else tmp
        measured = run(args.config, args.rollouts, args.warmup, overrides, log_dir)
    import alarm_pl

    summary = summarise(
        "alarm_pl",
        measured,
        args.warmup,
        {"config": args.config, "overrides": overrides, "torch": torch.__version__, "alarm_pl": alarm_pl.__version__},
    )
    report(summary)
    return summary


if __name__ == "__main__":
    main()
