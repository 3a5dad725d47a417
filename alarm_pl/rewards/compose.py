"""The four reward strategies of ALaRM (PAPER.md §1, step 3) as pure functions; the hierarchical rule lives here.

    r_t = w_h · H · 1[t = T]  +  1[H ≥ τ] · Σ_k w_k · σ(a_k)_t        (T = the response's own last real token)

| strategy        | per-token reward                                              |
|-----------------|---------------------------------------------------------------|
| `holistic_only` | w_h·H on the last real token                                  |
| `aspect_only`   | the aspect reward on every real token                         |
| `weighted_sum`  | both, no gate (the "no hierarchy" ablation)                   |
| `hierarchical`  | `holistic_only` where H < τ, `weighted_sum` where H ≥ τ       |

The aspect reward handed in is already shaped, weighted and summed over the active aspects; H is already normalised.
Degenerate responses (``degenerate``) get ``holistic_only`` under every strategy, ``aspect_only`` included: w_h·H on
their last token (H being the penalty), no aspect reward — the authors assign ``[0, …, 0, w_h·(−10)]`` to them before
the strategy is even looked at (``too_short_idx`` … ``continue`` in ``MT/train_ppo.py`` and
``long-form-QA/train_ppo.py`` ``main``).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from alarm_pl.rewards.base import last_token_mask

STRATEGIES: tuple[str, ...] = ("holistic_only", "aspect_only", "weighted_sum", "hierarchical")

# (holistic (B,), aspects (B, T), mask (B, T) bool, threshold τ, holistic_weight w_h) -> (B, T), 0 on padding
_Strategy = Callable[[Tensor, Tensor, Tensor, float, float], Tensor]


def gate_pass(holistic: Tensor, threshold: float) -> Tensor:
    """The hierarchical gate 1[H ≥ τ]; a tie H == τ passes.

    Args:
        holistic: (B,) normalised holistic reward H.
        threshold: τ, in the same (z-)units as H.

    Returns:
        (B,) bool, True where the aspect rewards count.
    """
    return holistic >= threshold


def _holistic_only(holistic: Tensor, aspects: Tensor, mask: Tensor, threshold: float, weight: float) -> Tensor:
    last = last_token_mask(mask)  # (B, T) all False for an empty row
    reward = (weight * holistic).to(aspects.dtype).unsqueeze(1).expand_as(aspects)  # (B, T)
    return torch.where(last, reward, torch.zeros_like(aspects))


def _aspect_only(holistic: Tensor, aspects: Tensor, mask: Tensor, threshold: float, weight: float) -> Tensor:
    return torch.where(mask, aspects, torch.zeros_like(aspects))  # (B, T)


def _weighted_sum(holistic: Tensor, aspects: Tensor, mask: Tensor, threshold: float, weight: float) -> Tensor:
    return _holistic_only(holistic, aspects, mask, threshold, weight) + _aspect_only(
        holistic, aspects, mask, threshold, weight
    )  # (B, T)


def _hierarchical(holistic: Tensor, aspects: Tensor, mask: Tensor, threshold: float, weight: float) -> Tensor:
    passed = gate_pass(holistic, threshold).unsqueeze(1)  # (B, 1)
    return torch.where(
        passed,
        _weighted_sum(holistic, aspects, mask, threshold, weight),
        _holistic_only(holistic, aspects, mask, threshold, weight),
    )  # (B, T)


_DISPATCH: dict[str, _Strategy] = {
    "holistic_only": _holistic_only,
    "aspect_only": _aspect_only,
    "weighted_sum": _weighted_sum,
    "hierarchical": _hierarchical,
}


def _check_shapes(holistic: Tensor, aspects: Tensor, mask: Tensor) -> None:
    if aspects.dim() != 2 or mask.shape != aspects.shape or holistic.shape != aspects.shape[:1]:
        raise ValueError(
            "compose_rewards: expected holistic (B,), aspects (B, T) and mask (B, T); got holistic "
            f"{tuple(holistic.shape)}, aspects {tuple(aspects.shape)}, mask {tuple(mask.shape)}"
        )


def compose_rewards(
    holistic: Tensor,
    aspects: Tensor,
    mask: Tensor,
    strategy: str,
    threshold: float,
    holistic_weight: float,
    degenerate: Optional[Tensor] = None,
) -> Tensor:
    """The per-token reward handed to PPO (before the KL penalty), for one of ``STRATEGIES``.

    Args:
        holistic: (B,) normalised holistic reward H (the degenerate penalty already in it).
        aspects: (B, T) aspect reward, already shaped, weighted and summed over the active aspects; values on
            padding are ignored.
        mask: (B, T) bool or 0/1 response mask, True on real tokens (right-padded).
        strategy: ``holistic_only``, ``aspect_only``, ``weighted_sum`` or ``hierarchical``.
        threshold: τ of the hierarchical gate (z-units of H); only ``hierarchical`` reads it.
        holistic_weight: w_h, the weight of H on the last real token.
        degenerate: optional (B,) bool; these rows get ``holistic_only`` whatever the strategy (module docstring).

    Returns:
        (B, T) per-token reward in ``aspects``' dtype, exactly 0 on padding (and on every token of an empty row).

    Raises:
        ValueError: for an unknown strategy or inconsistent shapes.
    """
    if strategy not in _DISPATCH:
        raise ValueError(f"unknown reward strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    _check_shapes(holistic, aspects, mask)
    mask, threshold, weight = mask.bool(), float(threshold), float(holistic_weight)
    reward = _DISPATCH[strategy](holistic, aspects, mask, threshold, weight)  # (B, T)
    if degenerate is None:
        return reward
    if degenerate.shape != holistic.shape:
        raise ValueError(f"compose_rewards: degenerate must be (B,) like holistic, got {tuple(degenerate.shape)}")
    penalty = _holistic_only(holistic, aspects, mask, threshold, weight)  # (B, T)
    return torch.where(degenerate.bool().unsqueeze(1), penalty, reward)  # (B, T)
