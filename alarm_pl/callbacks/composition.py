"""Reward composition (PAPER.md §1 steps 2–3) as a rollout callback: the per-token reward handed to PPO, under
whichever strategy ``model.reward.strategy`` configures (``holistic_only``, ``aspect_only``, ``weighted_sum`` or
ALaRM's ``hierarchical``).

It runs after aspect selection and before any user rollout callback (``callbacks/base.py``). The aspect part is the
sum of ``rollout.aspect_rewards`` over ``rollout.active_aspects`` (already shaped and weighted), zero on degenerate
responses and zero everywhere when no aspect is active; ``compose_rewards`` applies the strategy (the four rules,
the hierarchical one included, live there as pure functions) and gives degenerate responses w_h·H (H = the penalty)
on their last token under every strategy, ``aspect_only`` included.

Logged in ``rollout.stats`` (means over the B responses of per-response sums over tokens, unless said otherwise):
- ``reward/gate_pass_rate``: share of the *non-degenerate* responses with H ≥ τ (degenerate ones carry the penalty H
  and never get aspect rewards, so they say nothing about the gate); 0 when every response is degenerate. Logged
  under every strategy; only ``hierarchical`` gates on it (for the others it is the share that *would* pass).
- ``reward/holistic_component_mean``: the holistic part of the reward (what the strategy gives with no aspect reward;
  for ``aspect_only`` that is the degenerate responses' penalty alone).
- ``reward/aspect_component_mean``: the rest, i.e. the aspect bonuses the strategy lets through.
- ``reward/<aspect>_mean``: each active aspect's own part of the aspect component.
- ``reward/total_mean``: the whole reward (holistic + aspect component).
"""

from __future__ import annotations

import dataclasses

import torch
from lightning.pytorch import Trainer
from torch import Tensor

from alarm_pl.callbacks.base import PolicyScorer, RolloutCallback, RolloutStage
from alarm_pl.config import RewardConfig
from alarm_pl.rewards.compose import compose_rewards, gate_pass
from alarm_pl.rollout import Rollout


def active_aspect_reward(rollout: Rollout) -> Tensor:
    """Sum of the active aspects' shaped and weighted rewards, zero on degenerate responses and on padding.

    Args:
        rollout: a scored rollout; ``active_aspects`` must name keys of ``aspect_rewards``.

    Returns:
        (B, T) float aspect reward.
    """
    missing = [name for name in rollout.active_aspects if name not in rollout.aspect_rewards]
    if missing:
        raise KeyError(
            f"RewardComposition: active aspects {missing} have no reward in the rollout "
            f"(aspect rewards: {sorted(rollout.aspect_rewards)})"
        )
    mask = rollout.response_mask.bool()  # (B, T)
    total = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)  # (B, T)
    for name in rollout.active_aspects:
        total = total + rollout.aspect_rewards[name].float()  # (B, T)
    keep = mask & ~rollout.degenerate.bool().unsqueeze(1)  # (B, T)
    return torch.where(keep, total, torch.zeros_like(total))  # (B, T)


def gate_pass_rate(holistic: Tensor, degenerate: Tensor, threshold: float) -> float:
    """Share of non-degenerate responses whose H passes the gate (H ≥ τ); 0 when all are degenerate.

    Args:
        holistic: (B,) normalised holistic reward H.
        degenerate: (B,) bool.
        threshold: τ.
    """
    valid = ~degenerate.bool()  # (B,)
    passed = gate_pass(holistic, threshold) & valid  # (B,)
    return float(passed.sum()) / max(int(valid.sum()), 1)


def _mean_of_sums(per_token: Tensor) -> float:
    """Mean over responses of the per-response sum of a (B, T) per-token reward."""
    return float(per_token.sum(dim=1).mean()) if per_token.shape[0] > 0 else 0.0


class RewardComposition(RolloutCallback):
    """Sets ``rollout.token_rewards`` to the per-token reward of the configured strategy (see the module docstring).

    Args:
        config: the reward composition settings (``model.reward``): strategy, τ and w_h.
    """

    stage = RolloutStage.COMPOSITION

    def __init__(self, config: RewardConfig) -> None:
        self.config = config

    def _compose(self, rollout: Rollout, aspects: Tensor) -> Tensor:
        """(B, T) reward of the configured strategy for a (B, T) aspect part."""
        return compose_rewards(
            rollout.holistic,
            aspects,
            rollout.response_mask,
            self.config.strategy,
            self.config.threshold,
            self.config.holistic_weight,
            degenerate=rollout.degenerate,
        )

    def on_rollout_scored(self, trainer: Trainer, module: PolicyScorer, rollout: Rollout) -> Rollout:
        """Hand back a new rollout with ``token_rewards`` (B, T) and the reward stats; the input is left unchanged."""
        aspects = active_aspect_reward(rollout)  # (B, T)
        rewards = self._compose(rollout, aspects)  # (B, T)
        holistic_part = self._compose(rollout, torch.zeros_like(aspects))  # (B, T)
        stats = {
            "reward/gate_pass_rate": gate_pass_rate(rollout.holistic, rollout.degenerate, self.config.threshold),
            "reward/holistic_component_mean": _mean_of_sums(holistic_part),
            "reward/aspect_component_mean": _mean_of_sums(rewards - holistic_part),
            "reward/total_mean": _mean_of_sums(rewards),
        }
        for name in rollout.aspect_rewards:  # every candidate, every rollout: 0 when inactive (a key logged only
            # some rollouts would show its last value in the others' rows: Lightning keeps it within the epoch)
            if name not in rollout.active_aspects:
                stats[f"reward/{name}_mean"] = 0.0
                continue
            single = dataclasses.replace(rollout, active_aspects=(name,))
            stats[f"reward/{name}_mean"] = _mean_of_sums(
                self._compose(rollout, active_aspect_reward(single)) - holistic_part
            )
        return dataclasses.replace(rollout, token_rewards=rewards, stats={**rollout.stats, **stats})
