"""Per-rollout training metrics, written without Lightning's result collection.

``LightningModule.log`` costs about 0.8 ms per key on CPU (Lightning 2.6: every call goes through
``_ResultCollection.log``, which re-applies ``.to(device)`` over the stored metric with ``apply_to_collection`` and
builds the metric's bookkeeping); a rollout logs about 26 keys, so ``log_dict`` was two thirds of the time a tiny
CPU rollout spends outside the model passes (bench/README.md, "Framework overhead"). What the result collection
offers — accumulation over an epoch, reduction across processes — these metrics do not use: they are per-rollout
scalars already computed on this rank, logged ``on_step`` only and without ``sync_dist``.

:func:`log_step_metrics` gives them the same three destinations ``self.log(..., on_step=True, on_epoch=False)``
gives them:

- ``trainer.callback_metrics`` (as 0-dim float tensors, as Lightning stores them): callbacks, a ``ModelCheckpoint``
  monitor and the progress bar read them there, after every rollout;
- every logger, every ``trainer.log_every_n_steps`` rollouts, with the step Lightning gives its own on-step metrics
  (the number of training batches done) and the ``epoch`` key it adds, followed by ``logger.save()`` as Lightning
  does, so a crashed run keeps its rows on disk; loggers write on global rank 0 only (their methods are
  ``rank_zero_only``);
- nothing else: the values are not reduced across processes (``sync_dist=False`` before too).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from alarm_pl.rollout import Rollout


def should_write(trainer: pl.Trainer) -> bool:
    """Whether the loggers get this training step's metrics: Lightning's own rule (every ``log_every_n_steps``
    batches, counting the current one; never when it is 0)."""
    every = trainer.log_every_n_steps
    if not every:
        return False
    return (trainer.fit_loop.epoch_loop._batches_that_stepped + 1) % every == 0


def log_step_metrics(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """Record one training step's scalar ``metrics`` (called from ``training_step``) as described in the module
    docstring."""
    trainer.callback_metrics.update({key: torch.tensor(float(value)) for key, value in metrics.items()})
    if not trainer.loggers or not should_write(trainer):
        return
    step = trainer.fit_loop.epoch_loop._batches_that_stepped
    row = {key: float(value) for key, value in metrics.items()}
    row.setdefault("epoch", trainer.current_epoch)
    for logger in trainer.loggers:
        logger.log_metrics(row, step=step)
        logger.save()


def rollout_metrics(rollout: Rollout, stats: dict[str, float]) -> dict[str, float]:
    """One rollout's ``train/*`` metrics: the rollout's and the update's statistics, the mean holistic reward (as
    trained on, and raw), each aspect's mean metric (NaN-skipping: a dropped sample is NaN), the mean response length
    and the share of degenerate responses."""
    logs = {f"train/{k}": v for k, v in {**rollout.stats, **stats}.items()}
    logs["train/holistic"] = float(rollout.holistic.mean())
    logs["train/holistic_raw"] = float(rollout.scores[rollout.holistic_name].oriented_metric.nanmean())
    for name, score in rollout.scores.items():
        if name != rollout.holistic_name:
            logs[f"train/aspect/{name}"] = float(score.metric.float().nanmean())
    logs["train/response_length"] = float(rollout.inputs.lengths.float().mean())
    logs["train/degenerate_rate"] = float(rollout.degenerate.float().mean())
    return logs
