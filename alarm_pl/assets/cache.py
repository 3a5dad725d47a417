"""The offline asset cache: directories built once, atomically, under ``$ALARM_PL_CACHE`` (default
``~/.cache/alarm_pl``), shared by the tiny assets (``tiny.py``) and the dummy-weight checkpoints (``dummy.py``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch


def cache_dir() -> Path:
    """``$ALARM_PL_CACHE``, read now (tests point it at the checkout), or ``~/.cache/alarm_pl``."""
    return Path(os.environ.get("ALARM_PL_CACHE", Path.home() / ".cache" / "alarm_pl"))


def build_once(target: Path, build: Callable[[Path], None], label: str) -> Path:
    """``target``, building it with ``build(tmp_dir)`` and renaming ``tmp_dir`` into place when it is missing.

    The build writes into a fresh temporary directory next to ``target`` that becomes ``target`` only once it holds a
    ``config.json`` and weights, so an interrupted build leaves nothing behind. Under a process group of several
    processes rank 0 builds (transformers writes model files on rank 0 only) while the others wait at a barrier.

    Raises:
        RuntimeError: the build wrote no ``config.json`` or no ``*.safetensors`` file (``label`` names the asset).
    """
    if (target / "config.json").exists():
        return target
    if _distributed_rank() > 0:
        torch.distributed.barrier()
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        if not (tmp / "config.json").exists() or not any(tmp.glob("*.safetensors")):
            raise RuntimeError(f"building {label} in {tmp} wrote no complete model: {sorted(os.listdir(tmp))}")
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").exists():  # a concurrent builder did not win either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if _distributed_rank() == 0:
            torch.distributed.barrier()
    return target


def _distributed_rank() -> int:
    """This process's rank when a process group of several processes is running, else -1."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank()
    return -1
