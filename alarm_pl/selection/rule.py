"""The selection rule (PAPER.md §1 step 1): which aspects to activate given their inconsistency with the holistic
reward, with optional hysteresis for online re-selection. Pure: no state, no tensors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from typing import Optional


def select_aspects(
    inconsistency: Mapping[str, float],
    max_inconsistency: Optional[float],
    top_k: Optional[int],
    current: Set[str] = frozenset(),
    hysteresis: float = 0.0,
) -> tuple[str, ...]:
    """The selection decision: the most consistent aspects, with hysteresis in favour of the current ones.

    An aspect in ``current`` counts as ``hysteresis`` more consistent than measured: it stays within the bound while
    its inconsistency is ≤ bound + hysteresis, and a rival displaces it from the top k only with an inconsistency
    lower by more than ``hysteresis``; a new aspect enters within the bound only at ≤ bound − hysteresis. Ties go to
    current aspects, then to the alphabetically first name. NaN (unknown) aspects are never selected.

    Args:
        inconsistency: aspect name -> inconsistency in [0, 1] or NaN; its order is the order of the result.
        max_inconsistency: the bound, or None for none.
        top_k: the most aspects to select, or None for no limit.
        current: the currently active aspects.
        hysteresis: the margin (0 gives the plain rule).

    Returns:
        The selected names, in ``inconsistency``'s order.
    """

    def effective(name: str) -> float:
        return inconsistency[name] - (hysteresis if name in current else 0.0)

    def within_bound(name: str) -> bool:
        margin = hysteresis if name in current else -hysteresis
        return max_inconsistency is None or inconsistency[name] <= max_inconsistency + margin

    eligible = [name for name, value in inconsistency.items() if not math.isnan(value) and within_bound(name)]
    ranked = sorted(eligible, key=lambda name: (effective(name), name not in current, name))
    chosen = set(ranked if top_k is None else ranked[:top_k])
    return tuple(name for name in inconsistency if name in chosen)
