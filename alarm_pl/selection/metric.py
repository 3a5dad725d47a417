"""The consistency metric of training-time aspect selection: the counts of ``selection/consistency.py`` kept as
torchmetrics states, reduced by sum across processes, so ``compute()`` on every rank gives the numbers of the union of
all ranks' pairs (PAPER.md §1 "selection")."""

from __future__ import annotations

from typing import Mapping, Union

import torch
from torch import Tensor
from torchmetrics import Metric

from alarm_pl.selection.consistency import COUNT_NAMES, consistency_from_counts, pair_counts

AspectMetrics = Union[Mapping[str, Tensor], Tensor]


class RewardConsistency(Metric):
    """Inconsistency and win rate of every aspect against the holistic reward, over paired responses.

    Args:
        aspects: the K aspect names, in the column order of tensor inputs to ``update``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, aspects: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        if len(set(aspects)) != len(aspects):
            raise ValueError(f"RewardConsistency: aspect names must be unique, got {aspects}")
        self.aspects = list(aspects)
        for name in COUNT_NAMES:
            self.add_state(name, default=torch.zeros(len(self.aspects)), dist_reduce_fx="sum")

    def _as_matrix(self, metrics: AspectMetrics, n: int, side: str) -> Tensor:
        """(N, K) metrics in ``self.aspects`` order from a dict name -> (N,) or an (N, K) tensor."""
        if isinstance(metrics, Tensor):
            matrix = metrics
        else:
            missing = [name for name in self.aspects if name not in metrics]
            if missing:
                raise KeyError(f"RewardConsistency.update: aspect_{side} lacks {missing} (expected {self.aspects})")
            matrix = torch.stack([metrics[name].reshape(-1) for name in self.aspects], dim=1)  # (N, K)
        if matrix.shape != (n, len(self.aspects)):
            raise ValueError(
                f"RewardConsistency.update: aspect_{side} has shape {tuple(matrix.shape)}, expected ({n}, "
                f"{len(self.aspects)}) for aspects {self.aspects}"
            )
        return matrix.to(self.decisive_h.device)

    def update(self, holistic_a: Tensor, holistic_b: Tensor, aspect_a: AspectMetrics, aspect_b: AspectMetrics) -> None:
        """Add N pairs.

        Args:
            holistic_a: (N,) holistic reward of side a (any monotone form: raw or normalised).
            holistic_b: (N,) holistic reward of side b.
            aspect_a: side a's summary metric per aspect, oriented higher-is-better (``Score.oriented_metric``):
                a dict aspect name -> (N,) tensor (extra keys are ignored), or an (N, K) tensor in ``aspects`` order.
            aspect_b: the same for side b.
        """
        if holistic_a.shape != holistic_b.shape or holistic_a.dim() != 1:
            raise ValueError(
                f"RewardConsistency.update: holistic_a and holistic_b must both be (N,), got "
                f"{tuple(holistic_a.shape)} and {tuple(holistic_b.shape)}"
            )
        n = holistic_a.shape[0]
        device = self.decisive_h.device
        counts = pair_counts(
            holistic_a.to(device),
            holistic_b.to(device),
            self._as_matrix(aspect_a, n, "a"),
            self._as_matrix(aspect_b, n, "b"),
        )
        for name in COUNT_NAMES:
            setattr(self, name, getattr(self, name) + counts[name])

    def compute(self) -> dict[str, dict[str, float]]:
        """``{aspect: {"inconsistency", "win_rate", "n"}}`` over every pair seen by every process."""
        return consistency_from_counts({name: getattr(self, name) for name in COUNT_NAMES}, self.aspects)

    def counts(self) -> dict[str, Tensor]:
        """The counts summed over processes (a collective when distributed: call it on every rank), as CPU copies.

        Returns:
            ``{name: (K,) float}`` for every name in ``COUNT_NAMES``.
        """
        with self.sync_context(should_sync=True, should_unsync=True):
            return {name: getattr(self, name).detach().cpu().clone() for name in COUNT_NAMES}

    def set_counts(self, counts: Mapping[str, Tensor]) -> None:
        """Overwrite this process's counts (used to restore a checkpoint and to decay old evidence).

        Args:
            counts: ``{name: (K,)}`` for every name in ``COUNT_NAMES``.
        """
        for name in COUNT_NAMES:
            value = torch.as_tensor(counts[name], dtype=torch.float32).reshape(-1)
            if value.shape[0] != len(self.aspects):
                raise ValueError(
                    f"RewardConsistency.set_counts: {name} has {value.shape[0]} entries, "
                    f"expected {len(self.aspects)} for aspects {self.aspects}"
                )
            setattr(self, name, value.to(self.decisive_h.device))
        self._computed = None  # torchmetrics caches compute(); the counts changed under it
