"""Pairwise agreement of each aspect reward with the holistic reward (PAPER.md §1 "selection" and §4 win rates).

Two responses to the same prompt form a pair (a, b) — the paper pairs the SFT policy's greedy output (a) with its
pure-sampling output (b). For each pair and each aspect k:

    ΔH = H(a) − H(b),   Δk = m_k(a) − m_k(b)        (m_k oriented so that higher is better)

    inconsistency_k = #{sign ΔH ≠ 0, sign Δk ≠ 0, sign ΔH ≠ sign Δk} / #{sign ΔH ≠ 0}
    win_rate_k      = #{Δk > 0} / (#{Δk > 0} + #{Δk < 0})          (side a judged by aspect k; ties excluded)

A pair whose Δk is NaN (a metric undefined for one side, e.g. an error rate of an empty response) counts for none of
aspect k's numbers; a pair whose ΔH is NaN is never decisive.

This file is the one definition of these numbers: training-time selection accumulates ``pair_counts`` in a
torchmetrics state summed across processes (``selection/metric.py``), and the evaluation report counts its pairs of
systems with the same function (``eval/winrate.py``). It imports torch only, so the report stays light.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor

COUNT_NAMES: tuple[str, ...] = ("disagree", "decisive_h", "wins", "losses")


def pair_counts(holistic_a: Tensor, holistic_b: Tensor, aspect_a: Tensor, aspect_b: Tensor) -> dict[str, Tensor]:
    """Per-aspect counts of one batch of pairs.

    Args:
        holistic_a: (N,) holistic reward of side a.
        holistic_b: (N,) holistic reward of side b.
        aspect_a: (N, K) aspect summary metrics of side a, oriented higher-is-better.
        aspect_b: (N, K) the same for side b.

    Returns:
        ``{name: (K,) float counts}`` for every name in ``COUNT_NAMES`` (see the module docstring).
    """
    delta_h = (holistic_a - holistic_b).float()  # (N,)
    delta_k = (aspect_a - aspect_b).float()  # (N, K)
    known = ~torch.isnan(delta_k)  # (N, K)
    sign_h = torch.sign(torch.nan_to_num(delta_h, nan=0.0)).unsqueeze(1)  # (N, 1) NaN ΔH -> tie
    sign_k = torch.sign(torch.nan_to_num(delta_k, nan=0.0))  # (N, K)
    decisive = known & (sign_h != 0)  # (N, K)
    disagree = decisive & (sign_k != 0) & (sign_k != sign_h)  # (N, K)
    return {
        "disagree": disagree.sum(dim=0).float(),  # (K,)
        "decisive_h": decisive.sum(dim=0).float(),  # (K,)
        "wins": (sign_k > 0).sum(dim=0).float(),  # (K,)
        "losses": (sign_k < 0).sum(dim=0).float(),  # (K,)
    }


def consistency_from_counts(counts: Mapping[str, Tensor], aspects: list[str]) -> dict[str, dict[str, float]]:
    """Turn (possibly process-summed) counts into the per-aspect report.

    Args:
        counts: ``{name: (K,) counts}`` for every name in ``COUNT_NAMES``, in ``aspects`` order.
        aspects: the K aspect names.

    Returns:
        ``{aspect: {"inconsistency": float, "win_rate": float, "n": float}}``; a ratio whose denominator is 0 is NaN.
        ``n`` is the number of H-decisive pairs (the inconsistency's denominator).
    """
    report = {}
    for k, name in enumerate(aspects):
        decisive = float(counts["decisive_h"][k])
        judged = float(counts["wins"][k] + counts["losses"][k])
        report[name] = {
            "inconsistency": float(counts["disagree"][k]) / decisive if decisive > 0 else math.nan,
            "win_rate": float(counts["wins"][k]) / judged if judged > 0 else math.nan,
            "n": decisive,
        }
    return report
