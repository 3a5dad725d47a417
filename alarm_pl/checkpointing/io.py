"""Reading and writing checkpoint files: atomic writes, safe reads, errors that name the file.

Lightning's own ``TorchCheckpointIO`` writes a local checkpoint to the system's temporary directory and then moves
it, which on another file system is a copy that a kill can cut in half, and loads with whatever ``weights_only`` the
caller passes. ``SafeCheckpointIO`` writes next to the target and renames (``alarm_pl/files.py``), and reads with
``torch.load(..., weights_only=True)`` only: tensors and plain containers, never arbitrary objects, so a foreign file
cannot run code when it is opened. Every checkpoint alarm_pl writes holds nothing else (tests check it).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from alarm_pl.files import atomic_writer

REQUIRED_KEYS = ("state_dict", "loops", "pytorch-lightning_version")
"""What every Lightning training checkpoint holds; a torch file without them is something else."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or trusted; the message names the file, what is wrong and what to do."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unpickler_detail(error: BaseException) -> str:
    """The safe unpickler's own reason (e.g. ``Unsupported global: GLOBAL x.Y ...``, ``Unsupported operand 90``),
    without torch's generic advice around it."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0].split(" Please use")[0] if lines else type(error).__name__  # not torch's advice to allowlist


def _corrupt(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is truncated, corrupt or not a torch file ({reason}); if a run was "
        f"killed while writing it, use the previous checkpoint (last.ckpt is only ever replaced by "
        f"a complete file)"
    )


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = None) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, a directory, truncated or not a torch file, holds objects beyond
            tensors and plain containers, or is a torch file but not a training checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(
            f"checkpoint {path} is a directory; --ckpt_path takes a .ckpt file written during "
            f"fit (an --export_dir directory is loaded as model.policy.adapter_path instead)"
        )
    try:
        with path.open("rb") as handle:
            checkpoint = torch.load(handle, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(err)
        if "global" not in detail.lower():  # an operand the safe unpickler does not know: bytes of something else
            raise _corrupt(path, f"UnpicklingError: {detail}") from None
        raise CheckpointError(
            f"checkpoint {path} holds objects beyond tensors and plain containers ({detail}); "
            f"refusing to unpickle it, since that could run code. Checkpoints written by alarm_pl "
            f"never hold such objects: this file comes from elsewhere"
        ) from None
    except Exception as err:  # noqa: BLE001 - the unpickler fails on foreign bytes in many ways (IndexError, ...)
        raise _corrupt(path, f"{type(err).__name__}: {_first_line(err)}") from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is a torch file but not a training checkpoint (no {missing}); "
            f"--ckpt_path takes a .ckpt written during fit"
        )
    return checkpoint


def write_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename (``alarm_pl.files.atomic_writer``).

    Raises:
        WriteError: the write failed (disk full, …); the previous ``path`` is intact and the message names it.
    """
    with atomic_writer(path) as handle:
        torch.save(checkpoint, handle)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with atomic writes and ``weights_only`` reads (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError("SafeCheckpointIO.save_checkpoint takes no storage_options")
        write_checkpoint(checkpoint, path)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Optional[Callable] = lambda storage, loc: storage,
        weights_only: Optional[bool] = None,
    ) -> dict[str, Any]:
        if weights_only is False:
            raise CheckpointError(
                f"checkpoint {path}: loading with weights_only=False is refused; alarm_pl "
                f"checkpoints load with weights_only=True (drop --weights_only false)"
            )
        return read_checkpoint(path, map_location)


def install_safe_checkpoint_io(trainer: Any) -> None:
    """Give the trainer's strategy a ``SafeCheckpointIO`` unless the run chose another checkpoint I/O plugin."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = SafeCheckpointIO()
