"""The rollout container: everything one PPO step knows about a batch of generated responses.

Tensor conventions (DESIGN.md): masks are ``True`` on real tokens; response tensors are right-padded; response i's
last real token is at ``response_mask[i].sum() - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor

from alarm_pl.rewards.base import Score, ScoringInput


@dataclass(frozen=True)
class Rollout:
    """One batch of prompts, their sampled responses and everything scored about them.

    Attributes:
        query_ids: (B, P) prompt token ids as fed to the policy (left-padded for causal policies, right-padded for
            encoder-decoder policies).
        query_mask: (B, P) bool.
        response_ids: (B, T) right-padded response ids.
        response_mask: (B, T) bool.
        inputs: the decoded batch handed to scorers (prompts, responses, references, metadata, token spans).
        old_logprobs: (B, T) log π_old(y_t | ...) of the sampled tokens, 0 on padding.
        ref_logprobs: (B, T) log π_ref(y_t | ...), 0 on padding.
        values: (B, T) value-head estimates, 0 on padding.
        scores: every scored scorer's raw ``Score`` by name; the holistic one under ``holistic_name``.
        holistic_name: the name of the holistic scorer in ``scores``.
        holistic: (B,) H, normalised holistic reward (after the degenerate-response penalty).
        aspect_rewards: shaped and weighted per-token reward of each *candidate* aspect by name, (B, T) each.
        active_aspects: names of the aspects currently selected (set by the selection callback).
        token_rewards: (B, T) the composed per-token reward handed to PPO (set by the composition callback), before the
        KL term. degenerate: (B,) bool, responses at or below the degenerate length.
        stats: scalar logs gathered while producing the rollout (phase timings, selection decisions, gate rates).
    """

    query_ids: Tensor
    query_mask: Tensor
    response_ids: Tensor
    response_mask: Tensor
    inputs: ScoringInput
    old_logprobs: Tensor
    ref_logprobs: Tensor
    values: Tensor
    scores: dict[str, Score]
    holistic_name: str
    holistic: Tensor
    aspect_rewards: dict[str, Tensor]
    degenerate: Tensor
    active_aspects: tuple[str, ...] = ()
    token_rewards: Optional[Tensor] = None
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.response_ids.shape[0]
