"""Length-grouped batches: examples of similar length share a batch, so padding wastes less compute (SFT)."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, Sampler


class LengthGroupedBatchSampler(BatchSampler):
    """Cut the sampler's (shuffled) order into groups of ``group_size`` batches; sort each group by length, cut it
    into batches and shuffle their order. Every example still comes once per epoch and batches stay random across
    groups, but within a batch lengths are close. Under DDP Lightning passes its distributed sampler as ``sampler``.

    Args:
        sampler: yields example indices (e.g. a ``RandomSampler``).
        batch_size: examples per batch.
        drop_last: drop the last, incomplete batch.
        lengths: a length for every example of the dataset (any unit: characters of prompt and reference here).
        group_size: batches per group (50, as the ``group_by_length`` of transformers' Trainer).
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool, lengths: Sequence[int],
                 group_size: int = 50) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.lengths = lengths
        self.group_size = group_size

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        if self.drop_last:
            order = order[: len(order) - len(order) % self.batch_size]
        span = self.batch_size * self.group_size  # a multiple of batch_size: only the last batch can be short
        for start in range(0, len(order), span):
            group = sorted(order[start:start + span], key=lambda i: self.lengths[i], reverse=True)
            batches = [group[i:i + self.batch_size] for i in range(0, len(group), self.batch_size)]
            for k in torch.randperm(len(batches)).tolist():
                yield batches[k]
