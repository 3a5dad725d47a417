"""What can go wrong during a run, and what the trainer does about each (the policy, one place).

| fault | policy |
| --- | --- |
| a scorer raises | stop at the rollout boundary: the message names the scorer and the first sample it fails on |
| a scorer's server stays unreachable after its retries | stop at the rollout boundary; the message names the URL |
| a scorer returns NaN/inf for a sample | drop the sample from the update (its response mask is cleared), count it as ``train/dropped/<scorer>``, warn once per scorer naming the sample; stop when a rollout loses more than half its samples |
| out of memory while generating or scoring | stop at the rollout boundary; the message names the settings that reduce memory |
| out of memory in the PPO update | stop (the update is half done, so no checkpoint); same advice |
| a non-finite loss or gradient | stop before the optimizer step; the last checkpoint is the one to resume from |
| disk full (or any write error) while saving a checkpoint or generation file | stop; the previous file is intact (every file is written to a temporary name, then renamed); the message names the file |

"Stop at the rollout boundary" (a ``RolloutFault``): the fault comes before the policy update, while everything the
update changes (weights, optimizer, scheduler, KL controller, normalisers, selection counts) still holds the state of
the last completed rollout. ``RunCheckpoint`` then writes that state — with the random generators and the data
position as they were when the rollout started — to ``last.ckpt``, and ``--ckpt_path`` on it repeats the failed
rollout exactly. Under DDP every process learns of a fault on any process (``agree_across_processes``) and stops at
the same point, so that no process waits forever in a collective.
"""

from __future__ import annotations

import errno
import os
from typing import Callable, Optional, TypeVar

import torch

T = TypeVar("T")

MEMORY_KNOBS = (
    "data.init_args.batch_size (prompts per rollout)",
    "model.generation.max_new_tokens",
    "model.max_prompt_length",
    "data.init_args.eval_batch_size (validation/test)",
    "model.policy.quantization_bits: 4 (QLoRA)",
    "model.policy.gradient_checkpointing: true",
    "model.ppo.num_minibatches (smaller PPO minibatches)",
    "trainer.precision: bf16-mixed",
)
"""The settings that lower peak memory, named in every out-of-memory message."""


class RolloutFault(RuntimeError):
    """A fault inside a rollout before its policy update: the run stops and the last rollout boundary is saved.

    Attributes:
        checkpoint_path: where that state was saved (set by ``RunCheckpoint``), or None when nothing was saved.
        agreed: every process raised this fault at the same point (set by ``agree_across_processes``); only then is
            a checkpoint written, because saving is a collective.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.checkpoint_path: Optional[str] = None
        self.agreed = False

    def __str__(self) -> str:
        if self.checkpoint_path is None:
            return self.message
        return (
            f"{self.message}\nThe state after the last completed rollout is saved in {self.checkpoint_path}; "
            f"fix the cause, then resume with --ckpt_path {self.checkpoint_path}"
        )


class ScorerFault(RolloutFault):
    """A scorer failed: it raised, or its server stayed unreachable after the retries."""


class OutOfMemoryFault(RolloutFault):
    """The accelerator (or host) ran out of memory while generating or scoring."""


class NonFiniteError(RuntimeError):
    """A loss or gradient became NaN/inf; nothing was applied to the weights."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an out-of-memory error of torch (CUDA, MPS, XPU or the CPU allocator)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def memory_advice(phase: str, error: BaseException) -> str:
    """The out-of-memory message: where it happened, the original error's first line, and the knobs to turn."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"out of memory during {phase} ({first_line}). Lower one of: {', '.join(MEMORY_KNOBS)}"


def agree_across_processes(local: Optional[RolloutFault]) -> None:
    """Raise, on every process, the first fault any process saw (a collective under ``torch.distributed``).

    Args:
        local: this process's fault, or None when its part went well. Every process must call this at the same
            point, fault or not.

    Raises:
        RolloutFault: ``local`` itself, or a copy of the fault of the lowest failing rank (same type and message),
            marked ``agreed``.
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed or torch.distributed.get_world_size() == 1:
        if local is not None:
            local.agreed = True
            raise local
        return
    reports: list = [None] * torch.distributed.get_world_size()
    mine = None if local is None else (type(local).__name__, local.message)
    torch.distributed.all_gather_object(reports, mine)
    failed = [(rank, report) for rank, report in enumerate(reports) if report is not None]
    if not failed:
        return
    if local is None:
        rank, (kind, message) = failed[0]
        kinds = {cls.__name__: cls for cls in (RolloutFault, ScorerFault, OutOfMemoryFault)}
        local = kinds.get(kind, RolloutFault)(f"process {rank}: {message}")
    local.agreed = True
    raise local


def guard_memory(phase: str, run: Callable[[], T]) -> T:
    """``run()``, with an out-of-memory error turned into an agreed ``OutOfMemoryFault`` on every process."""
    fault, result = None, None
    try:
        result = run()
    except Exception as err:  # noqa: BLE001 - only out-of-memory errors are turned into faults
        if not is_out_of_memory(err):
            raise
        fault = OutOfMemoryFault(memory_advice(phase, err))
        fault.__cause__ = err
        _release_cached_memory()
    agree_across_processes(fault)
    return result


def _release_cached_memory() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def describe_write_error(path: str | os.PathLike[str], error: OSError) -> str:
    """A message for a failed write that names the file, the reason and what was kept."""
    reason = os.strerror(error.errno) if error.errno else str(error)
    hint = " (the disk is full: free space or point the output elsewhere)" if error.errno == errno.ENOSPC else ""
    return f"could not write {os.fspath(path)}: {reason}{hint}; the previous version of the file, if any, is unchanged"
