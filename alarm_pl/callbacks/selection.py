"""Aspect selection (PAPER.md §1 step 1, "proactive reward selection") as a rollout callback.

Modes:
- ``fixed``: the configured aspects are active on every rollout (the paper's runs: hard-coded after an offline study).
- ``auto``: a warm-up of ``warmup_rollouts`` rollouts measures, for every candidate aspect, how often it disagrees with
  the holistic reward on paired responses to the same prompts — the greedy response (side a, from
  ``module.score_greedy``) against the rollout's sampled response (side b), as the paper did — then decides once.
  During the warm-up **no aspect is active**: the policy trains on the pure holistic reward (``holistic_only``
  behaviour whatever the strategy), and ``score_greedy`` costs one extra greedy generation per rollout.
- ``online``: as ``auto``, then keeps measuring on every rollout and re-decides every ``reselect_every`` rollouts.
  Old evidence fades by **exponentially decayed counts**: from the first decision on, the accumulated counts are
  multiplied by ``decay`` before each rollout's pairs are added (a window of about 1 / (1 − decay) rollouts).
  ``hysteresis`` keeps the active set from flapping (see ``select_aspects``).

An aspect with fewer than ``min_pairs`` H-decisive pairs has unknown inconsistency and is never selected; a decision
waits (the warm-up is extended, still measuring) until at least one candidate has that many.

Logged per rollout in ``rollout.stats``: ``selection/<aspect>/inconsistency`` (once known),
``selection/<aspect>/active`` (0/1), ``selection/num_active`` and ``selection/warmup`` (1 while no decision has been
made, auto/online only).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_warn

from alarm_pl.callbacks.base import RolloutCallback
from alarm_pl.config import SelectionConfig
from alarm_pl.rollout import Rollout
from alarm_pl.selection.consistency import COUNT_NAMES, RewardConsistency, consistency_from_counts
from alarm_pl.selection.rule import select_aspects

if TYPE_CHECKING:
    from alarm_pl.module import ALaRMModule


def _check_names(names: Sequence[str], candidates: Sequence[str]) -> None:
    unknown = [name for name in names if name not in candidates]
    if unknown:
        raise ValueError(
            f"model.selection.aspects names {unknown}, which are not configured aspect scorers; "
            f"the candidates are {list(candidates)} (the names of model.aspects)"
        )


def _process_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


class AspectSelection(RolloutCallback):
    """Sets ``rollout.active_aspects`` on every rollout (see the module docstring for the modes).

    Args:
        config: the selection settings (``model.selection``).
        candidates: the names of the configured aspect scorers (keys of ``rollout.aspect_rewards``).
    """

    def __init__(self, config: SelectionConfig, candidates: Sequence[str]) -> None:
        self.config = config
        if config.aspects is not None:
            _check_names(config.aspects, candidates)
        chosen = list(candidates) if config.aspects is None else list(config.aspects)
        self.all_candidates: tuple[str, ...] = tuple(candidates)
        # the aspects measured and decided on (fixed mode: the active ones), in the candidates' order
        self.candidates: tuple[str, ...] = tuple(name for name in candidates if name in chosen)
        self.metric = RewardConsistency(list(self.candidates))
        self.rollouts_seen = 0
        self.active: tuple[str, ...] = self.candidates if config.mode == "fixed" else ()
        self.last_decision_at: Optional[int] = None
        self.history: list[dict[str, Any]] = []
        self.inconsistency: dict[str, float] = {}
        self._counts = {name: torch.zeros(len(self.candidates)) for name in COUNT_NAMES}
        self._warned_extended = False

    @property
    def decided(self) -> bool:
        """Whether a decision was made (always True in fixed mode)."""
        return self.config.mode == "fixed" or self.last_decision_at is not None

    def on_rollout_scored(self, trainer: Trainer, module: "ALaRMModule", rollout: Rollout) -> Rollout:
        """Measure (auto/online), decide when due, and hand back the rollout with ``active_aspects`` and stats."""
        self.rollouts_seen += 1
        if self.config.mode == "online" or (self.config.mode == "auto" and not self.decided):
            self._measure(module, rollout)
            if self._decision_due():
                self._decide()
        stats = {**rollout.stats, **self._stats()}
        return dataclasses.replace(rollout, active_aspects=self.active, stats=stats)

    def _measure(self, module: "ALaRMModule", rollout: Rollout) -> None:
        """Score the greedy responses of the same prompts and add the (greedy, sampled) pairs to the metric."""
        holistic_greedy, scores_greedy = module.score_greedy(rollout)  # (B,), {name: Score}
        missing = [name for name in self.candidates if name not in scores_greedy or name not in rollout.scores]
        if missing:
            raise KeyError(f"AspectSelection: no score for candidate aspects {missing} in the rollout or in "
                           f"module.score_greedy's output")
        aspect_greedy = {name: scores_greedy[name].oriented_metric for name in self.candidates}  # (B,) each
        aspect_sampled = {name: rollout.scores[name].oriented_metric for name in self.candidates}  # (B,) each
        self.metric.to(rollout.holistic.device)
        if self.config.mode == "online" and self.decided and self.config.decay < 1.0:
            local = {name: getattr(self.metric, name) * self.config.decay for name in COUNT_NAMES}
            self.metric.set_counts(local)
        self.metric.update(holistic_greedy, rollout.holistic, aspect_greedy, aspect_sampled)
        self._counts = self.metric.counts()  # summed over processes: every rank decides alike
        report = consistency_from_counts(self._counts, list(self.candidates))
        self.inconsistency = {
            name: values["inconsistency"] if values["n"] >= self.config.min_pairs else math.nan
            for name, values in report.items()
        }

    def _decision_due(self) -> bool:
        if self.rollouts_seen < self.config.warmup_rollouts:
            return False
        since = None if self.last_decision_at is None else self.rollouts_seen - self.last_decision_at
        if since is not None and since < self.config.reselect_every:
            return False
        if all(math.isnan(value) for value in self.inconsistency.values()):
            if not self._warned_extended:
                rank_zero_warn(f"AspectSelection: no candidate aspect has {self.config.min_pairs} H-decisive pairs "
                               f"(model.selection.min_pairs) after {self.rollouts_seen} rollouts; the decision waits")
                self._warned_extended = True
            return False
        return True

    def _decide(self) -> None:
        hysteresis = self.config.hysteresis if self.config.mode == "online" else 0.0
        self.active = select_aspects(self.inconsistency, self.config.max_inconsistency, self.config.top_k,
                                     frozenset(self.active), hysteresis)
        self.last_decision_at = self.rollouts_seen
        self.history.append({"rollout": self.rollouts_seen, "active": list(self.active),
                             "inconsistency": dict(self.inconsistency)})

    def _stats(self) -> dict[str, float]:
        stats = {f"selection/{name}/inconsistency": value
                 for name, value in self.inconsistency.items() if not math.isnan(value)}
        stats.update({f"selection/{name}/active": float(name in self.active) for name in self.all_candidates})
        stats["selection/num_active"] = float(len(self.active))
        if self.config.mode != "fixed":
            stats["selection/warmup"] = float(not self.decided)
        return stats

    def state_dict(self) -> dict[str, Any]:
        """Counters, decision history, the active set and the process-summed consistency counts."""
        return {
            "candidates": list(self.candidates),
            "rollouts_seen": self.rollouts_seen,
            "active": list(self.active),
            "last_decision_at": self.last_decision_at,
            "history": [dict(entry) for entry in self.history],
            "inconsistency": dict(self.inconsistency),
            "counts": {name: value.clone() for name, value in self._counts.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict``; the summed counts go to process 0 (zeros elsewhere) so the sum stays right."""
        if list(state_dict["candidates"]) != list(self.candidates):
            raise ValueError(f"AspectSelection: the checkpoint's candidate aspects {state_dict['candidates']} differ "
                             f"from the configured ones {list(self.candidates)} (model.aspects / "
                             f"model.selection.aspects)")
        self.rollouts_seen = int(state_dict["rollouts_seen"])
        self.active = tuple(state_dict["active"])
        self.last_decision_at = state_dict["last_decision_at"]
        self.history = [dict(entry) for entry in state_dict["history"]]
        self.inconsistency = dict(state_dict["inconsistency"])
        self._counts = {name: torch.as_tensor(value).clone() for name, value in state_dict["counts"].items()}
        rank_counts = self._counts if _process_rank() == 0 else {
            name: torch.zeros_like(value) for name, value in self._counts.items()}
        self.metric.set_counts(rank_counts)
