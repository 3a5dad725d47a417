"""``RunCheckpoint``: Lightning's ``ModelCheckpoint`` (same arguments) that leaves a ``last.ckpt`` behind every run.

On top of ``ModelCheckpoint`` (whose ``save_last`` defaults to True here):

- **at the end of training** (``max_steps`` reached, early stop) it writes ``last.ckpt`` when the final step has not
  been saved yet, and logs where it is;
- **on SIGTERM** (preemption) Lightning finishes the current rollout and stops (``SIGTERMException``); this callback
  writes ``last.ckpt`` first. A signal during validation stops it; the resumed run does not repeat it;
- **on a ``RolloutFault``** (a scorer or its server failed, memory ran out while generating or scoring:
  ``alarm_pl/faults.py``) it writes ``last.ckpt`` with the state of the last completed rollout: the training state
  has not changed yet, and the loop progress and data position come from a snapshot taken when that rollout ended
  (the random generators from ``ResumeState``), so resuming repeats the failed rollout exactly;
- ``--ckpt_path last`` picks the newest ``last.ckpt`` of the run's logger directory, whichever ``version_N`` wrote it
  (Lightning looks in the new run's own, still empty, version directory).

Every checkpoint written during a rollout's hooks, at an epoch's end, on SIGTERM or on a fault holds the loop
progress and data position as they were when the rollout ended (``on_train_batch_end``, or after its validation):
Lightning resumes correctly from that state, while the later ones (after an epoch's end has been counted) resume
with the finished epoch's batch counters, and the next epoch would end after one batch.

Any other exception (e.g. a non-finite gradient in the middle of an update) leaves no new checkpoint: the state is
then half-way through a rollout and would not resume exactly.
"""

from __future__ import annotations

import copy
import glob
import os
import re
from typing import Any, Literal, Optional, Union

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from alarm_pl.faults import RolloutFault

_LAST = re.compile(r"^last(-v\d+)?\.ckpt$")


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that always leaves a ``last.ckpt`` (see the module docstring).

    Args:
        save_last: as ``ModelCheckpoint``'s, default True (``last.ckpt`` is what a resume and ``--ckpt_path last`` use).
        **kwargs: every other ``ModelCheckpoint`` argument (``dirpath``, ``monitor``, ``save_top_k``,
            ``every_n_train_steps``, ...).
    """

    def __init__(self, save_last: Optional[Union[bool, Literal["link"]]] = True, **kwargs: Any) -> None:
        super().__init__(save_last=save_last, **kwargs)
        self._boundary: Optional[tuple[int, dict[str, Any]]] = None

    # ------------------------------------------------------------------ the last rollout boundary
    def _remember_boundary(self, trainer: Trainer) -> None:
        """Keep the loop progress and data position of this moment, a rollout boundary (small: counters and the
        data loader's state)."""
        self._boundary = (trainer.global_step, copy.deepcopy(trainer.fit_loop.state_dict()))

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._remember_boundary(trainer)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._remember_boundary(trainer)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._remember_boundary(trainer)
        super().on_validation_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Every checkpoint of this rollout gets the loop progress of the rollout's end, the state Lightning resumes
        from correctly (later states — after an epoch's end was counted — resume with the finished epoch's batch
        counters, and one batch into the next epoch would end it)."""
        if trainer.state.fn == "fit" and self._boundary is not None and self._boundary[0] == trainer.global_step:
            checkpoint["loops"]["fit_loop"] = copy.deepcopy(self._boundary[1])

    # ------------------------------------------------------------------ when the run ends
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and self._last_global_step_saved != trainer.global_step and not trainer.fast_dev_run:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if self.last_model_path:
            rank_zero_info(f"last checkpoint (rollout {trainer.global_step}): {self.last_model_path}")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if not self.save_last or trainer.sanity_checking or trainer.fast_dev_run:
            return
        if isinstance(exception, SIGTERMException):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            rank_zero_info(
                f"SIGTERM: saved {self.last_model_path}; resume with --ckpt_path {self.last_model_path} "
                f"(or --ckpt_path last)"
            )
        elif isinstance(exception, RolloutFault) and exception.agreed:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            exception.checkpoint_path = self.last_model_path

    # ------------------------------------------------------------------ --ckpt_path last
    def _find_last_checkpoints(self, trainer: Trainer) -> set[str]:
        """Every ``last*.ckpt`` of the run: in ``dirpath`` when given, else in each ``<save_dir>/<name>/*/checkpoints``
        of the first logger (each run writes its own version directory), else in ``<default_root_dir>/checkpoints``."""
        if self.dirpath is not None:
            directories = [str(self.dirpath)]
        elif trainer.loggers and trainer.loggers[0].save_dir is not None:
            logger = trainer.loggers[0]
            directories = glob.glob(
                os.path.join(glob.escape(str(logger.save_dir)), glob.escape(str(logger.name or "")), "*", "checkpoints")
            )
        else:
            directories = [os.path.join(trainer.default_root_dir, "checkpoints")]
        return {
            os.path.normpath(os.path.join(d, name))
            for d in directories
            if os.path.isdir(d)
            for name in os.listdir(d)
            if _LAST.match(name)
        }


def with_run_checkpoint(trainer_config: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The trainer's keyword arguments with a ``RunCheckpoint`` added to ``trainer_config``'s callbacks when
    checkpointing is on and no checkpoint callback is configured (in place of Lightning's default one)."""
    if trainer_config.get("enable_checkpointing") is False or "callbacks" in kwargs:
        return kwargs
    callbacks = trainer_config.get("callbacks") or []
    callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    if any(type(c) is ModelCheckpoint for c in callbacks):
        rank_zero_warn(
            "trainer.callbacks has lightning's ModelCheckpoint: use alarm_pl.checkpointing.RunCheckpoint "
            "(same arguments) to also get last.ckpt at the end of training, on SIGTERM and on faults"
        )
    if any(isinstance(c, ModelCheckpoint) for c in callbacks):
        return kwargs
    return {**kwargs, "callbacks": [*callbacks, RunCheckpoint()]}
