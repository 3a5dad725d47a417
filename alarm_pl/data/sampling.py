"""Training orders that resume exactly: a sharded random order, and length-grouped batches (SFT).

Both follow torchdata's ``Stateful`` protocol, so ``StatefulDataLoader`` saves and restores them. Their state is the
generator's state when the current pass (epoch) began and the items yielded since: a restored sampler repeats that
pass from its start and skips what was yielded (a pass saved complete, at an epoch's end, is replayed silently and
the next one follows), and the passes after it continue the generator exactly as an uninterrupted run does. The order
never depends on an epoch number (which Lightning sets only after a resumed run has already built its first iterator)
nor on torch's global generator (which the policy's sampling uses).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DistributedSampler, Sampler


class PassState:
    """Where a sampler's current pass began (its generator's state) and how many items it has yielded.

    Args:
        generator: the sampler's generator; None: torch's global one (then a pass cannot be repeated).
    """

    def __init__(self, generator: Optional[torch.Generator]) -> None:
        self.generator = generator
        self.start: Optional[Tensor] = None
        self.yielded = 0
        self._resume: Optional[dict[str, Any]] = None

    def begin(self) -> int:
        """Start a pass (from the restored one's start, after ``load_state_dict``); returns the items to skip."""
        resume, self._resume = self._resume, None
        if resume is not None and resume["pass_start"] is not None and self.generator is not None:
            self.generator.set_state(resume["pass_start"])
        self.start = None if self.generator is None else self.generator.get_state()
        self.yielded = 0
        return 0 if resume is None else int(resume["yielded"])

    def state_dict(self) -> dict[str, Any]:
        return {"pass_start": self.start, "yielded": self.yielded}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict)


def _resumable(
    make_items: Callable[[], Iterator[Any]], length: int, state: PassState, used: Optional[int] = None
) -> Iterator[Any]:
    """One pass over ``make_items()`` (``length`` items), resumed where ``state`` says; a restored pass that had
    yielded everything it is used for (``used`` items, default ``length``) is replayed without yielding (to advance
    the generator) and the next pass follows."""
    skip = state.begin()
    if skip >= (length if used is None else used) > 0:
        for _ in make_items():
            pass
        skip = state.begin()
    for index, item in enumerate(make_items()):
        if index >= skip:
            state.yielded = index + 1
            yield item


class ShardedRandomSampler(DistributedSampler):
    """A new random order of the dataset every pass, drawn from ``generator``, and this process's shard of it
    (DistributedSampler's layout: the order padded with its own first indices to a multiple of ``num_replicas``,
    then every ``num_replicas``-th index from ``rank``). One process: the whole order.

    A ``DistributedSampler`` so that Lightning keeps it under DDP (instead of wrapping the loader's sampler, whose
    every new iterator then draws a new order); ``set_epoch`` has no effect.

    Args:
        size: the dataset's length.
        generator: the order's generator (the same seed on every process, so the shards are disjoint).
        num_replicas: processes.
        rank: this process.
        drop_last_batch_size: the loader's batch size when it drops the last, incomplete batch. A loader saves its
            state after its last full batch, before it asks for the items it would drop; with this given, a pass
            restored at that point counts as complete, so the resumed loader starts the next pass instead of an
            empty epoch (Lightning would count one epoch too many).
    """

    def __init__(
        self,
        size: int,
        generator: torch.Generator,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last_batch_size: Optional[int] = None,
    ) -> None:
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=True)
        self.size, self.generator = size, generator
        self.drop_last_batch_size = drop_last_batch_size
        self.pass_state = PassState(generator)

    def __len__(self) -> int:
        return math.ceil(self.size / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        used = len(self)
        if self.drop_last_batch_size:
            used -= used % self.drop_last_batch_size
        return _resumable(self._shard, len(self), self.pass_state, used)

    def _shard(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=self.generator).tolist()  # drawn at the first item, not before
        total = len(self) * self.num_replicas
        order += (order * math.ceil(total / max(len(order), 1)))[: total - len(order)]
        yield from order[self.rank : total : self.num_replicas]

    def state_dict(self) -> dict[str, Any]:
        return self.pass_state.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pass_state.load_state_dict(state_dict)


class LengthGroupedBatchSampler(BatchSampler):
    """Cut the sampler's (shuffled) order into groups of ``group_size`` batches; sort each group by length, cut it
    into batches and shuffle their order. Every example still comes once per epoch and batches stay random across
    groups, but within a batch lengths are close. Under DDP Lightning passes its distributed sampler as ``sampler``.

    Resumable (see the module docstring) when ``generator`` is the generator of ``sampler`` too.

    Args:
        sampler: yields example indices (e.g. a ``RandomSampler`` drawing from ``generator``).
        batch_size: examples per batch.
        drop_last: drop the last, incomplete batch.
        lengths: a length for every example of the dataset (any unit: characters of prompt and reference here).
        group_size: batches per group (50, as the ``group_by_length`` of transformers' Trainer).
        generator: the generator of the batch order (and of ``sampler``); None: torch's global one (not resumable).
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        lengths: Sequence[int],
        group_size: int = 50,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.lengths = lengths
        self.group_size = group_size
        self.generator = generator
        self.pass_state = PassState(generator)

    def __iter__(self) -> Iterator[list[int]]:
        return _resumable(self._batches, len(self), self.pass_state)

    def _batches(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        if self.drop_last:
            order = order[: len(order) - len(order) % self.batch_size]
        span = self.batch_size * self.group_size  # a multiple of batch_size: only the last batch can be short
        for start in range(0, len(order), span):
            group = sorted(order[start : start + span], key=lambda i: self.lengths[i], reverse=True)
            batches = [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
            for k in torch.randperm(len(batches), generator=self.generator).tolist():
                yield batches[k]

    def state_dict(self) -> dict[str, Any]:
        return self.pass_state.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pass_state.load_state_dict(state_dict)
