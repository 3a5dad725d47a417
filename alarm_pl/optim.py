"""Learning-rate schedules that the stock torch schedulers do not express as one ``LRSchedulerCallable``."""

from __future__ import annotations

import math
from typing import Optional

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class WarmupCosineLR(LambdaLR):
    """Linear warm-up from 0 to the base learning rate over the first ``ceil(warmup_ratio · total_steps)`` steps,
    then a half cosine down to 0 at ``total_steps``: the schedule of transformers' ``lr_scheduler_type="cosine"``
    (``get_cosine_schedule_with_warmup``), which the ALaRM authors' MT SFT used (``MT/train_sft.py``). Stepped once
    per optimizer step.

    Args:
        optimizer: the wrapped optimizer.
        warmup_ratio: share of the steps spent warming up (authors' MT SFT: 0.1).
        total_steps: optimizer steps of the whole run; ``None`` lets the module fill it in from the trainer
            (``trainer.estimated_stepping_batches``) before the first step, so "5 epochs" needs no step count.
    """

    def __init__(self, optimizer: Optimizer, warmup_ratio: float = 0.0, total_steps: Optional[int] = None) -> None:
        if not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(f"lr_scheduler warmup_ratio must be in [0, 1), got {warmup_ratio}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"lr_scheduler total_steps must be >= 1 or null, got {total_steps}")
        self.warmup_ratio = warmup_ratio
        self.total_steps = total_steps
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        """The multiplier of the base learning rate at optimizer step ``step`` (1 until ``total_steps`` is known)."""
        if self.total_steps is None:
            return 1.0
        warmup = math.ceil(self.warmup_ratio * self.total_steps)
        if step < warmup:
            return step / warmup
        progress = (step - warmup) / max(1, self.total_steps - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    def set_total_steps(self, total_steps: int) -> None:
        """Fix the run length and re-apply the schedule at the current step."""
        if total_steps < 1:
            raise ValueError(f"lr_scheduler total_steps must be >= 1, got {total_steps}")
        self.total_steps = int(total_steps)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * self.factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def optimizer_config(optimizer_factory, scheduler_factory, params, trainer):
    """What ``configure_optimizers`` returns for the SFT and reward-model modules: the optimizer over ``params`` and,
    when a scheduler factory is given, its scheduler stepped every optimizer step (a ``WarmupCosineLR`` without a
    length gets the run's number of optimizer steps from ``trainer``)."""
    optimizer = optimizer_factory(params)
    if scheduler_factory is None:
        return optimizer
    scheduler = scheduler_factory(optimizer)
    if isinstance(scheduler, WarmupCosineLR) and scheduler.total_steps is None:
        scheduler.set_total_steps(int(trainer.estimated_stepping_batches))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
