"""Does length-grouped batching pay for SFT? Padding share and training seconds per step, random vs grouped.

    python bench/bench_sft_batching.py [--config configs/tiny_sft.yaml] [--steps 100] [--repeats 2]

For each setting (``data.init_args.group_by_length`` false / true, alternated ``--repeats`` times) it runs
``fit`` of the config for ``--steps`` optimizer steps without validation and reports the share of padded token
slots (encoder + decoder, or prompt + response) and the wall and process-CPU seconds per step after the first 10.
A benchmark, not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import lightning.pytorch as pl

from alarm_pl.cli import cli_main


class StepClock(pl.Callback):
    """Wall and CPU time of the steps after ``skip`` and the padding share of every batch."""

    def __init__(self, skip: int = 10) -> None:
        self.skip, self.real, self.slots, self.marks = skip, 0, 0, []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        sft = module.make_batch(batch.prompts, batch.references)
        inputs = sft.attention_mask
        self.real += int(inputs.sum())
        self.slots += inputs.numel()
        if sft.decoder_input_ids is not None:  # seq2seq: the decoder side pads too
            self.real += sft.num_target_tokens
            self.slots += sft.labels.numel()
        if batch_idx == self.skip:
            self.marks.append((time.perf_counter(), _cpu_seconds()))

    def on_train_end(self, trainer, module):
        self.marks.append((time.perf_counter(), _cpu_seconds()))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(config: str, steps: int, grouped: bool) -> dict:
    cli = cli_main(
        [
            "--config",
            config,
            "--trainer.max_steps",
            str(steps),
            "--trainer.limit_val_batches",
            "0",
            "--trainer.logger",
            "false",
            "--trainer.enable_checkpointing",
            "false",
            "--trainer.enable_progress_bar",
            "false",
            "--data.init_args.group_by_length",
            str(grouped).lower(),
        ],
        run=False,
    )
    clock = StepClock()
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    (wall0, cpu0), (wall1, cpu1) = clock.marks
    measured = steps - clock.skip
    return {
        "group_by_length": grouped,
        "padding_share": round(1 - clock.real / clock.slots, 4),
        "wall_s_per_step": round((wall1 - wall0) / measured, 4),
        "cpu_s_per_step": round((cpu1 - cpu0) / measured, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny_sft.yaml")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.repeats):
        for grouped in (False, True):
            print(json.dumps(measure(args.config, args.steps, grouped)), flush=True)


if __name__ == "__main__":
    main()
