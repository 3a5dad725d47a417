"""Aspect selection (PAPER.md §1 step 1, "proactive reward selection") as a rollout callback.

An aspect's *inconsistency* is how often it disagrees with the holistic reward H on paired responses to the same
prompt (``selection/consistency.py``): side a a greedy response, side b a sampled one. Modes:

- ``fixed``: the configured aspects are active on every rollout (the paper's runs: hard-coded after an offline study).
- ``auto`` (the paper's measurement, automated): before the first PPO update (``on_train_start``), a **selection
  pass** takes ``num_prompts`` training prompts, generates a greedy and a sampled (rollout decoding) response to each
  with the *starting* policy (the SFT policy, as in the paper), scores both, and decides once. Every rollout then
  trains with that decision. The pass costs two generations and two scorings of ``num_prompts`` prompts, once. The
  decision is checkpointed: a resumed run does not pass again.
- ``online`` (our extension): measures on the policy being trained instead — on every rollout, the greedy responses
  to the rollout's prompts (one extra greedy generation per rollout, side a) against the rollout's own sampled
  responses (side b). During a warm-up of ``warmup_rollouts`` rollouts **no aspect is active** (pure holistic reward,
  ``holistic_only`` behaviour whatever the strategy); then it decides, keeps measuring and re-decides every
  ``reselect_every`` rollouts. Old evidence fades by **exponentially decayed counts**: from the first decision on,
  the accumulated counts are multiplied by ``decay`` before each rollout's pairs are added (a window of about
  1 / (1 − decay) rollouts). ``hysteresis`` keeps the active set from flapping (see ``select_aspects``).

An aspect with fewer than ``min_pairs`` H-decisive pairs has unknown inconsistency and is never selected. ``auto``
fails with a clear error when no candidate reaches ``min_pairs`` in its pass; ``online`` extends its warm-up (still
measuring) until one does.

Logged per rollout in ``rollout.stats``: ``selection/<aspect>/inconsistency`` (once known),
``selection/<aspect>/active`` (0/1), ``selection/num_active``, and in online mode ``selection/warmup`` (1 while no
decision has been made).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Optional

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler

from alarm_pl.callbacks.base import PolicyScorer, RolloutCallback, RolloutStage
from alarm_pl.checkpointing.resume_state import gather_per_process, process_count
from alarm_pl.config import SelectionConfig
from alarm_pl.data.prompts import PromptBatch
from alarm_pl.rewards.base import Score
from alarm_pl.rollout import Rollout
from alarm_pl.selection.consistency import COUNT_NAMES, consistency_from_counts
from alarm_pl.selection.metric import RewardConsistency
from alarm_pl.selection.rule import select_aspects


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


def take_prompts(batches: Iterable[PromptBatch], n: int) -> Iterator[PromptBatch]:
    """The first ``n`` prompts of ``batches``, as batches (the last one cut short when needed)."""
    left = n
    for batch in batches:
        if left <= 0:
            return
        if len(batch) > left:
            cut = slice(0, left)
            batch = PromptBatch(
                batch.prompts[cut],
                batch.references[cut],
                batch.metadata[cut],
                None if batch.indices is None else batch.indices[cut],
            )
        left -= len(batch)
        yield batch


def measurement_batches(loader: Iterable[PromptBatch], world_size: int, rank: int) -> Iterable[PromptBatch]:
    """Batches of this process's share of the training prompts, in a seeded random order, for the selection pass.

    A training ``DataLoader`` is not iterated itself: a resumable loader's saved position is that of its latest
    iterator, and its order generator would move, so the pass reads the same dataset through a loader of its own
    (the order follows the run's seed). Anything else (a list of batches) is returned as it is.
    """
    if not isinstance(loader, DataLoader):
        return loader
    sampler = DistributedSampler(
        loader.dataset, num_replicas=max(world_size, 1), rank=rank, shuffle=True, seed=torch.initial_seed() % 2**63
    )
    batch_size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", 1)
    return DataLoader(loader.dataset, batch_size=batch_size, sampler=sampler, collate_fn=loader.collate_fn)


class AspectSelection(RolloutCallback):
    """Sets ``rollout.active_aspects`` on every rollout (see the module docstring for the modes).

    Args:
        config: the selection settings (``model.selection``).
        candidates: the names of the configured aspect scorers (keys of ``rollout.aspect_rewards``).
    """

    stage = RolloutStage.SELECTION

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

    # ------------------------------------------------------------------ auto: the selection pass
    def on_train_start(self, trainer: Trainer, pl_module: PolicyScorer) -> None:
        """``auto``: run the selection pass on the starting policy, unless a restored checkpoint already decided."""
        if self.config.mode != "auto" or self.decided:
            return
        if trainer.train_dataloader is None:
            raise RuntimeError(
                "AspectSelection (model.selection.mode=auto): the trainer has no training dataloader "
                "to draw the selection prompts from"
            )
        per_process = math.ceil(self.config.num_prompts / max(trainer.world_size, 1))
        batches = measurement_batches(trainer.train_dataloader, trainer.world_size, getattr(trainer, "global_rank", 0))
        self.selection_pass(pl_module, batches, per_process)

    def selection_pass(self, scorer: PolicyScorer, batches: Iterable[PromptBatch], num_prompts: int) -> None:
        """Pair greedy with sampled responses of the current policy on ``num_prompts`` prompts, then decide once.

        Args:
            scorer: the module (through the protocol).
            batches: prompt batches to draw from (the training dataloader).
            num_prompts: prompts of this process (the counts are summed over processes before deciding).

        Raises:
            RuntimeError: when no candidate aspect has ``min_pairs`` H-decisive pairs after the pass.
        """
        seen = 0
        for batch in take_prompts(batches, num_prompts):
            holistic_greedy, scores_greedy = scorer.score_prompts(batch, do_sample=False)  # (B,), {name: Score}
            holistic_sampled, scores_sampled = scorer.score_prompts(batch, do_sample=True)
            self._add_pairs(holistic_greedy, holistic_sampled, scores_greedy, scores_sampled)
            seen += len(batch)
        if seen < num_prompts:
            rank_zero_warn(
                f"AspectSelection: the selection pass found {seen} training prompts, fewer than the "
                f"{num_prompts} asked for (model.selection.num_prompts)"
            )
        self._refresh_inconsistency()
        if all(math.isnan(value) for value in self.inconsistency.values()):
            raise RuntimeError(
                f"AspectSelection (model.selection.mode=auto): after the selection pass on {seen} prompts per process "
                f"no candidate aspect has {self.config.min_pairs} pairs whose holistic rewards differ "
                f"(model.selection.min_pairs); raise model.selection.num_prompts, lower min_pairs, or choose the "
                f"aspects yourself with mode: fixed"
            )
        self._decide()
        rank_zero_info(
            f"AspectSelection: inconsistency {self._rounded()} on {seen} prompts per process; "
            f"active aspects {list(self.active)}"
        )

    # ------------------------------------------------------------------ every rollout
    def on_rollout_scored(self, trainer: Trainer, module: PolicyScorer, rollout: Rollout) -> Rollout:
        """Measure (online), decide when due, and hand back the rollout with ``active_aspects`` and stats."""
        if self.config.mode == "auto" and not self.decided:
            raise RuntimeError(
                "AspectSelection (model.selection.mode=auto): no decision before the first rollout; "
                "the selection pass runs in on_train_start (was the callback used outside "
                "Trainer.fit?)"
            )
        if self.config.mode == "online":
            self._measure(module, rollout)  # first: a scorer fault here leaves the state of the last rollout
        self.rollouts_seen += 1
        if self.config.mode == "online":
            if self._decision_due():
                self._decide()
        stats = {**rollout.stats, **self._stats()}
        return dataclasses.replace(rollout, active_aspects=self.active, stats=stats)

    def _measure(self, module: PolicyScorer, rollout: Rollout) -> None:
        """Score greedy responses to the rollout's prompts and add the (greedy, sampled) pairs to the metric."""
        inputs = rollout.inputs
        batch = PromptBatch(list(inputs.prompts), list(inputs.references), list(inputs.metadata))
        holistic_greedy, scores_greedy = module.score_prompts(batch, do_sample=False)  # (B,), {name: Score}
        if self.decided and self.config.decay < 1.0:
            local = {name: getattr(self.metric, name) * self.config.decay for name in COUNT_NAMES}
            self.metric.set_counts(local)
        self._add_pairs(holistic_greedy, rollout.holistic, scores_greedy, rollout.scores)
        self._refresh_inconsistency()

    def _add_pairs(
        self, holistic_a: Tensor, holistic_b: Tensor, scores_a: dict[str, Score], scores_b: dict[str, Score]
    ) -> None:
        """Add B pairs (side a: greedy, side b: sampled) of every candidate's oriented metric to the metric."""
        missing = [name for name in self.candidates if name not in scores_a or name not in scores_b]
        if missing:
            raise KeyError(
                f"AspectSelection: no score for candidate aspects {missing} among the greedy or the "
                f"sampled responses' scores"
            )
        self.metric.to(holistic_b.device)
        self.metric.update(
            holistic_a,
            holistic_b,
            {name: scores_a[name].oriented_metric for name in self.candidates},
            {name: scores_b[name].oriented_metric for name in self.candidates},
        )

    def _refresh_inconsistency(self) -> None:
        """Counts summed over processes (a collective: every rank decides alike) → per-aspect inconsistency."""
        self._counts = self.metric.counts()
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
                rank_zero_warn(
                    f"AspectSelection: no candidate aspect has {self.config.min_pairs} H-decisive pairs "
                    f"(model.selection.min_pairs) after {self.rollouts_seen} rollouts; the decision waits"
                )
                self._warned_extended = True
            return False
        return True

    def _decide(self) -> None:
        hysteresis = self.config.hysteresis if self.config.mode == "online" else 0.0
        self.active = select_aspects(
            self.inconsistency, self.config.max_inconsistency, self.config.top_k, frozenset(self.active), hysteresis
        )
        self.last_decision_at = self.rollouts_seen
        self.history.append(
            {"rollout": self.rollouts_seen, "active": list(self.active), "inconsistency": dict(self.inconsistency)}
        )

    def _rounded(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in self.inconsistency.items()}

    def _stats(self) -> dict[str, float]:
        stats = {
            f"selection/{name}/inconsistency": value
            for name, value in self.inconsistency.items()
            if not math.isnan(value)
        }
        stats.update({f"selection/{name}/active": float(name in self.active) for name in self.all_candidates})
        stats["selection/num_active"] = float(len(self.active))
        if self.config.mode == "online":
            stats["selection/warmup"] = float(not self.decided)
        return stats

    # ------------------------------------------------------------------ checkpoints
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
            "process_counts": gather_per_process(self._local_counts()),
        }

    def _local_counts(self) -> dict[str, Tensor]:
        """This process's own counts (what it adds to the sum), as CPU copies."""
        return {name: getattr(self.metric, name).detach().cpu().clone() for name in COUNT_NAMES}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict``: every process gets back its own counts, so that decaying and adding to them
        rounds exactly as in the run that saved them; with another number of processes the summed counts go to
        process 0 (zeros elsewhere), so the sum stays right."""
        if list(state_dict["candidates"]) != list(self.candidates):
            raise ValueError(
                f"AspectSelection: the checkpoint's candidate aspects {state_dict['candidates']} differ "
                f"from the configured ones {list(self.candidates)} (model.aspects / "
                f"model.selection.aspects)"
            )
        self.rollouts_seen = int(state_dict["rollouts_seen"])
        self.active = tuple(state_dict["active"])
        self.last_decision_at = state_dict["last_decision_at"]
        self.history = [dict(entry) for entry in state_dict["history"]]
        self.inconsistency = dict(state_dict["inconsistency"])
        self._counts = {name: torch.as_tensor(value).clone() for name, value in state_dict["counts"].items()}
        per_process, rank = state_dict.get("process_counts"), _process_rank()
        if per_process is not None and len(per_process) == process_count():
            rank_counts = {name: torch.as_tensor(value).clone() for name, value in per_process[rank].items()}
        else:
            rank_counts = (
                self._counts if rank == 0 else {name: torch.zeros_like(value) for name, value in self._counts.items()}
            )
        self.metric.set_counts(rank_counts)
