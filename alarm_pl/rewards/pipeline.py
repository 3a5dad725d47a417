"""The scoring pipeline: decoded responses → every scorer's ``Score`` → H and each aspect's shaped reward.

The composition into one per-token reward (selection + hierarchy) happens afterwards, in the rollout callbacks.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from alarm_pl.config import RewardConfig
from alarm_pl.faults import RolloutFault, agree_across_processes
from alarm_pl.rewards.align import decode_batch_with_spans
from alarm_pl.rewards.base import Score, Scorer, ScoringInput
from alarm_pl.rewards.checks import NonFiniteFilter, run_scorer, without_rows
from alarm_pl.rewards.normalize import normalize_holistic, shape_aspect


class ScoredBatch(NamedTuple):
    """What the pipeline returns for a batch.

    Attributes:
        scores: every scorer's raw ``Score`` by name (the holistic one included).
        holistic: (B,) H, normalised, with the degenerate penalty applied (what training composes).
        aspect_rewards: (B, T) shaped and weighted reward of each aspect by name; 0 on degenerate rows.
        degenerate: (B,) bool, empty responses (``RewardConfig.degenerate_max_tokens``).
        holistic_unpenalized: (B,) H as the reward model scored it, normalised, without the penalty (what generation
            files and win rates report, as the authors' test files do); NaN for dropped samples.
        dropped: (B,) bool, samples some scorer gave a NaN/inf value: every score of theirs is emptied (metric NaN,
            nothing placed), ``holistic`` is 0 and training leaves them out of the update (``alarm_pl/faults.py``).
        dropped_by: how many samples each scorer's non-finite values dropped, by scorer name.
    """

    scores: dict[str, Score]
    holistic: Tensor
    aspect_rewards: dict[str, Tensor]
    degenerate: Tensor
    holistic_unpenalized: Tensor
    dropped: Optional[Tensor] = None
    dropped_by: Optional[dict[str, int]] = None


class ScoringPipeline(nn.Module):
    """Holds the holistic scorer, the candidate aspect scorers and their normalisers (whose state is checkpointed).

    Args:
        holistic: the holistic scorer (its metric, oriented higher-is-better, is H before normalisation).
        aspects: candidate aspect scorers; names must be unique and differ from the holistic scorer's.
        reward: the ``model.reward`` argument group (degenerate-response rule).
    """

    def __init__(self, holistic: Scorer, aspects: Sequence[Scorer], reward: RewardConfig) -> None:
        super().__init__()
        names = [holistic.name] + [a.name for a in aspects]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"model.aspects / model.holistic: scorer names must be unique, repeated: {duplicates} "
                "(set init_args.name to tell them apart)"
            )
        self.holistic_scorer = holistic
        self.aspect_scorers = list(aspects)
        self.reward = reward
        self.normalizers = nn.ModuleDict(
            {s.name: s.normalizer for s in [holistic, *aspects] if isinstance(s.normalizer, nn.Module)}
        )
        self._ready = False
        self._nonfinite = NonFiniteFilter()

    @property
    def aspect_names(self) -> list[str]:
        return [a.name for a in self.aspect_scorers]

    def setup(self, device: torch.device) -> None:
        """Start every scorer (models, detectors, servers) once."""
        if self._ready:
            return
        for scorer in [self.holistic_scorer, *self.aspect_scorers]:
            scorer.setup(device)
        self._ready = True

    def teardown(self) -> None:
        for scorer in [self.holistic_scorer, *self.aspect_scorers]:
            scorer.teardown()
        self._ready = False

    @staticmethod
    def build_inputs(
        tokenizer,
        prompts: list[str],
        references: list[Optional[str]],
        metadata: list[dict],
        response_ids: Tensor,
        response_mask: Tensor,
    ) -> ScoringInput:
        """Decode each response with its token character spans (``rewards/align.py``)."""
        texts, spans = decode_batch_with_spans(tokenizer, response_ids, response_mask)
        return ScoringInput(prompts, texts, references, metadata, response_ids, response_mask.bool(), spans)

    def score(self, inputs: ScoringInput, update_normalizers: bool = True) -> ScoredBatch:
        """Score with every scorer; ``update_normalizers`` is False for evaluation and for paired greedy scoring.

        Every scorer runs before any normaliser is fed, and a scorer's failure is shared with every process
        (``faults.agree_across_processes``) before the first collective, so a failed batch changes no state and
        every process stops at the same point. Samples with non-finite scores are dropped (``ScoredBatch.dropped``).

        Raises:
            ScorerFault: a scorer raised, returned the wrong shapes or NaN/inf for most of the batch, on any process.
            OutOfMemoryFault: a scorer ran out of memory on any process.
        """
        scores, dropped_by, fault = {}, {}, None
        try:
            for scorer in [self.holistic_scorer, *self.aspect_scorers]:
                scores[scorer.name] = run_scorer(scorer, inputs)
            dropped_by = {name: self._nonfinite.check(name, score, inputs) for name, score in scores.items()}
        except RolloutFault as err:
            fault = err
        agree_across_processes(fault)
        return self._normalize(inputs, scores, dropped_by, update_normalizers)

    def _normalize(
        self, inputs: ScoringInput, scores: dict[str, Score], dropped_by: dict[str, Tensor], update: bool
    ) -> ScoredBatch:
        mask = inputs.response_mask
        dropped = torch.stack(list(dropped_by.values())).any(dim=0).to(mask.device)  # (B,)
        scores = {name: without_rows(score, dropped) for name, score in scores.items()}
        degenerate = inputs.lengths <= self.reward.degenerate_max_tokens  # (B,)
        holistic_score = scores[self.holistic_scorer.name]
        scored = normalize_holistic(holistic_score, self.holistic_scorer.normalizer, update).to(mask.device)
        holistic = torch.where(degenerate, torch.full_like(scored, self.reward.degenerate_holistic), scored)  # (B,)
        holistic = torch.where(dropped, torch.zeros_like(holistic), holistic)  # no NaN past this point
        aspect_rewards = {}
        for scorer in self.aspect_scorers:
            reward = shape_aspect(scores[scorer.name], scorer, update=update).to(mask.device)  # (B, T)
            aspect_rewards[scorer.name] = reward * (~degenerate).unsqueeze(1) * mask
        counts = {name: int(rows.sum()) for name, rows in dropped_by.items()}
        return ScoredBatch(scores, holistic, aspect_rewards, degenerate, scored, dropped, counts)
