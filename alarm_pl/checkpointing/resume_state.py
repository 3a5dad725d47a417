"""Every process's random generators in the checkpoint, restored when training resumes.

Sampling in generation, PPO's minibatch order (``torch.randperm``) and dropout draw from the global torch generator,
so a resumed run continues the uninterrupted run's random stream only if that generator (and Python's, NumPy's and
the current CUDA device's) is put back exactly. The data order does not use it: the training loader has its own
generator whose state travels with the loader's (``data/prompts.py``).

The states are stored as tensors, ints and lists only, so that a checkpoint loads with ``torch.load(...,
weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any, Optional

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from alarm_pl.faults import RolloutFault


def capture() -> dict[str, Any]:
    """This process's generator states: Python, NumPy, torch (CPU) and the current CUDA device when CUDA is in use."""
    version, python_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore(state: dict[str, Any]) -> None:
    """Set this process's generators to ``state`` (from ``capture``)."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state(
        (numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"], numpy["has_gauss"], numpy["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def gather_per_process(state: Any) -> list[Any]:
    """Every process's ``state``, by rank (a collective when ``torch.distributed`` runs several processes: call it on
    every rank, as Lightning does when it collects callback states for a checkpoint)."""
    if not _distributed():
        return [state]
    states: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(states, state)
    return states


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _rank() -> int:
    return torch.distributed.get_rank() if _distributed() else 0


def process_count() -> int:
    return torch.distributed.get_world_size() if _distributed() else 1


class ResumeState(Callback):
    """Saves the generators of every process in the checkpoint and restores this process's when training resumes.

    The state saved is the live one, except when a ``RolloutFault`` stops the run in the middle of a rollout: then it
    is the one captured when that rollout started, so that the checkpoint describes the last rollout boundary
    (``alarm_pl/faults.py``). Restoring waits for ``on_train_start``, after Lightning has rebuilt the data loaders,
    and before the first resumed rollout draws anything.
    """

    def __init__(self) -> None:
        self._rollout_start: Optional[dict[str, Any]] = None
        self._use_rollout_start = False
        self._pending: Optional[dict[str, Any]] = None

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._rollout_start = capture()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._use_rollout_start = isinstance(exception, RolloutFault) and self._rollout_start is not None

    def state_dict(self) -> dict[str, Any]:
        """``{"states": [rank 0's, rank 1's, ...]}`` (every process takes part: Lightning dumps on all ranks)."""
        state = self._rollout_start if self._use_rollout_start else capture()
        return {"states": gather_per_process(state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states, rank, world = state_dict["states"], _rank(), process_count()
        if len(states) != world:
            rank_zero_warn(
                f"ResumeState: the checkpoint holds the random states of {len(states)} process(es) and "
                f"this run has {world}; a resumed run repeats an uninterrupted one exactly only with the "
                f"same number of processes"
            )
        self._pending = states[rank] if rank < len(states) else None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            restore(self._pending)
            self._pending = None
