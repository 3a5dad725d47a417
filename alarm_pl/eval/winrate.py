"""Pairwise win rates and reward consistency between systems, by a reward or a metric (PAPER.md §1, §4).

Two systems' generations are aligned by prompt. Per prompt, system A *wins* against B on a metric when its value is
better (higher, or lower for error metrics), *loses* when it is worse and *ties* when equal or when either value is
missing (NaN). Ties are excluded: ``win rate = wins / (wins + losses)``, undefined (``None``) with no decisive
prompt. A system's Avg. is the mean of its win rates against every other system.

Inconsistency of a metric with the holistic reward H, over every unordered pair of systems and every prompt:
``#{sign ΔH ≠ 0, sign Δmetric ≠ 0 and the signs differ} / #{sign ΔH ≠ 0}``, the metric oriented so that higher is
better. The counting is the one of training-time aspect selection (``selection.consistency.pair_counts``), so the
report and the selection never disagree: a prompt where either system's metric is missing (NaN) counts for nothing,
and one where H is missing is never H-decisive.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from itertools import combinations
from typing import Mapping, Optional, Sequence

import torch

from alarm_pl.eval.records import GenerationRecord
from alarm_pl.selection.consistency import pair_counts

log = logging.getLogger(__name__)

HOLISTIC = "holistic"
LENGTH = "length"


@dataclass(frozen=True)
class PairCounts:
    """Outcomes of one system against another over the aligned prompts."""

    wins: int = 0
    losses: int = 0
    ties: int = 0

    @property
    def decisive(self) -> int:
        return self.wins + self.losses

    @property
    def win_rate(self) -> Optional[float]:
        """wins / (wins + losses), or ``None`` when no prompt was decisive."""
        return self.wins / self.decisive if self.decisive else None

    def swapped(self) -> "PairCounts":
        """The same outcomes seen from the other system."""
        return PairCounts(wins=self.losses, losses=self.wins, ties=self.ties)

    def to_json(self) -> dict:
        return {"win": self.wins, "lose": self.losses, "tie": self.ties, "win_rate": self.win_rate}


@dataclass(frozen=True)
class Consistency:
    """A metric's agreement with the holistic reward (PAPER.md §1)."""

    inconsistent: int
    decisive: int

    @property
    def inconsistency(self) -> Optional[float]:
        """inconsistent / decisive, or ``None`` when H never differs."""
        return self.inconsistent / self.decisive if self.decisive else None

    def to_json(self) -> dict:
        return {"inconsistent": self.inconsistent, "decisive": self.decisive, "inconsistency": self.inconsistency}


@dataclass(frozen=True)
class Alignment:
    """Several systems' records matched by prompt.

    Attributes:
        systems: system names in the order given.
        prompts: prompts present in every system, in the first system's file order.
        records: system -> prompt -> record.
        missing: system -> prompts that another system has and this one lacks.
    """

    systems: tuple[str, ...]
    prompts: tuple[str, ...]
    records: dict[str, dict[str, GenerationRecord]]
    missing: dict[str, tuple[str, ...]]

    def values(self, metric: str) -> dict[str, list[float]]:
        """Per system, the values of ``metric`` (``holistic``, ``length`` or an aspect) over ``prompts``.

        An aspect a record does not carry reads as NaN (a tie in every comparison).
        """
        return {
            system: [_metric_value(self.records[system][prompt], metric) for prompt in self.prompts]
            for system in self.systems
        }

    def aspect_names(self) -> list[str]:
        """Every aspect name carried by any record, in first-seen order."""
        names: dict[str, None] = {}
        for system in self.systems:
            for record in self.records[system].values():
                names.update(dict.fromkeys(record.aspects))
        return list(names)


def _metric_value(record: GenerationRecord, metric: str) -> float:
    if metric == HOLISTIC:
        return record.holistic
    if metric == LENGTH:
        return float(record.length)
    return record.aspects.get(metric, math.nan)


def align_by_prompt(systems: Mapping[str, Sequence[GenerationRecord]]) -> Alignment:
    """Match the systems' records by prompt.

    Args:
        systems: system name -> its records (at least two systems).

    Returns:
        The alignment on the prompts common to all systems; prompts missing somewhere are listed in ``missing``
        and logged.

    Raises:
        ValueError: when fewer than two systems are given, a system repeats a prompt, or no prompt is common.
    """
    if len(systems) < 2:
        raise ValueError(f"comparing systems needs at least two, got {list(systems)}")
    by_prompt: dict[str, dict[str, GenerationRecord]] = {}
    for name, records in systems.items():
        table: dict[str, GenerationRecord] = {}
        for index, record in enumerate(records):
            if record.prompt in table:
                raise ValueError(
                    f"system {name!r}: record {index + 1} repeats the prompt {record.prompt[:80]!r}; "
                    f"each prompt must appear once per generation file"
                )
            table[record.prompt] = record
        by_prompt[name] = table
    every = set().union(*(table.keys() for table in by_prompt.values()))
    first = next(iter(systems))
    common = tuple(p for p in by_prompt[first] if all(p in table for table in by_prompt.values()))
    missing = {name: tuple(sorted(every - table.keys())) for name, table in by_prompt.items()}
    for name, prompts in missing.items():
        if prompts:
            log.warning("system %r lacks %d prompt(s) that other systems have; they are left out", name, len(prompts))
    if not common:
        raise ValueError(f"the systems {list(systems)} share no prompt; are these generation files for the same data?")
    return Alignment(systems=tuple(systems), prompts=common, records=by_prompt, missing=missing)


def _sign(x: float) -> int:
    """-1, 0 or +1; NaN counts as 0 (undecided)."""
    return 0 if math.isnan(x) or x == 0 else (1 if x > 0 else -1)


def compare_values(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> PairCounts:
    """Wins, losses and ties of system A against system B, prompt by prompt.

    Args:
        a: A's values, one per aligned prompt.
        b: B's values on the same prompts.
        higher_is_better: the metric's direction (False: the lower error rate wins).
    """
    if len(a) != len(b):
        raise ValueError(f"compare_values: {len(a)} values against {len(b)}; align the systems by prompt first")
    direction = 1 if higher_is_better else -1
    signs = [direction * _sign(x - y) for x, y in zip(a, b)]
    return PairCounts(wins=signs.count(1), losses=signs.count(-1), ties=signs.count(0))


def pairwise_counts(
    values: Mapping[str, Sequence[float]], higher_is_better: bool = True
) -> dict[tuple[str, str], PairCounts]:
    """``compare_values`` for every ordered pair of systems: ``(a, b) -> counts of a against b``."""
    counts = {}
    for a, b in combinations(values, 2):
        counts[(a, b)] = compare_values(values[a], values[b], higher_is_better)
        counts[(b, a)] = counts[(a, b)].swapped()
    return counts


def average_win_rates(
    systems: Sequence[str], counts: Mapping[tuple[str, str], PairCounts]
) -> dict[str, Optional[float]]:
    """The Avg. column: each system's mean win rate over the other systems (undefined rates left out)."""
    averages = {}
    for system in systems:
        rates = [counts[(system, other)].win_rate for other in systems if other != system]
        defined = [rate for rate in rates if rate is not None]
        averages[system] = sum(defined) / len(defined) if defined else None
    return averages


def _vector(values: Sequence[float]) -> torch.Tensor:
    """(N,) float64 (no tie appears from rounding the files' values)."""
    return torch.tensor(list(values), dtype=torch.float64)


def inconsistency(
    holistic: Mapping[str, Sequence[float]], metric: Mapping[str, Sequence[float]], higher_is_better: bool = True
) -> Consistency:
    """A metric's inconsistency with the holistic reward over every unordered pair of systems and every prompt.

    Args:
        holistic: system -> H per aligned prompt.
        metric: system -> the metric per aligned prompt (same systems and prompts).
        higher_is_better: the metric's direction; it is oriented so that higher is better before comparing.
    """
    direction = 1.0 if higher_is_better else -1.0
    inconsistent = decisive = 0
    for a, b in combinations(holistic, 2):
        counts = pair_counts(
            _vector(holistic[a]),
            _vector(holistic[b]),
            direction * _vector(metric[a]).unsqueeze(1),
            direction * _vector(metric[b]).unsqueeze(1),
        )  # (N,), (N,), (N, 1), (N, 1)
        inconsistent += int(counts["disagree"][0])
        decisive += int(counts["decisive_h"][0])
    return Consistency(inconsistent=inconsistent, decisive=decisive)


def aspect_directions(alignment: Alignment, lower_is_better: Sequence[str] = ()) -> dict[str, bool]:
    """Each aspect's direction (``higher_is_better``) from the records, overridden by ``lower_is_better``.

    Raises:
        ValueError: when records disagree on an aspect's direction (naming the systems).
    """
    declared: dict[str, dict[bool, str]] = {}
    for system in alignment.systems:
        for record in alignment.records[system].values():
            for name, higher in record.aspect_higher_is_better.items():
                declared.setdefault(name, {}).setdefault(higher, system)
    directions = {}
    for name in alignment.aspect_names():
        seen = declared.get(name, {})
        if len(seen) > 1:
            raise ValueError(
                f"aspect {name!r}: system {seen[True]!r} declares higher-is-better, system "
                f"{seen[False]!r} lower-is-better; fix the generation files"
            )
        if name in lower_is_better:
            directions[name] = False
        elif seen:
            directions[name] = next(iter(seen))
        else:
            log.warning("aspect %r has no declared direction; assuming higher is better (see --lower_is_better)", name)
            directions[name] = True
    return directions
