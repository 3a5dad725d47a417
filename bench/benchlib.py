"""Shared by ``bench_alarm.py`` and ``bench_trl.py`` (which run in different virtual environments): the per-rollout
record, the summary statistics, the printed table and the JSON line. Standard library only.

A *rollout* is one PPO step: generate B responses → reference/old log-probs and values → score → PPO epochs.
Phase names are the trainer's: ``generate``, ``reference``, ``score``, ``update``; ``other`` is the part of a
rollout's wall time that no phase covers (data loading, reward composition, logging, callbacks).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import resource
import statistics
import time
from dataclasses import dataclass, field

PHASES = ("generate", "reference", "score", "update")
JSON_PREFIX = "BENCH_JSON "


@dataclass
class RolloutTiming:
    """One measured rollout.

    Attributes:
        total: wall seconds from the end of the previous rollout to the end of this one.
        phases: seconds per phase name (a subset of ``PHASES``).
        episodes: prompts (responses) in the rollout.
        response_tokens: real response tokens generated in the rollout (summed over the batch).
        cpu_total: CPU seconds of the process over the same span (``time.process_time``); with one torch thread this
            is the work done, without the time spent waiting for a core on a loaded machine. None: not measured.
        cpu_phases: CPU seconds per phase name (``PhaseCpuClock``).
    """

    total: float
    phases: dict[str, float] = field(default_factory=dict)
    episodes: int = 0
    response_tokens: int = 0
    cpu_total: float | None = None
    cpu_phases: dict[str, float] = field(default_factory=dict)


class PhaseCpuClock:
    """CPU seconds per phase, accumulated by wrapping the callables that make up each phase (``wrap``).

    Nested wrapped calls count once, in the outermost phase. ``take`` hands back the current rollout's seconds and
    starts the next rollout.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._depth = 0

    def wrap(self, owner, name: str, phase) -> None:
        """Replace ``owner.name`` by a wrapper that adds its CPU time to ``phase``: a phase name, or a callable
        returning the phase name of this call (None: not counted). Missing attributes are skipped, so one list of
        names serves several versions of a trainer."""
        inner = getattr(owner, name, None)
        if inner is None:
            return

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            current = phase() if callable(phase) else phase
            if self._depth or current is None:
                return inner(*args, **kwargs)
            self._depth += 1
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[current] = self.seconds.get(current, 0.0) + time.process_time() - start
                self._depth -= 1

        setattr(owner, name, timed)

    def take(self) -> dict[str, float]:
        seconds, self.seconds = self.seconds, {}
        return seconds


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if platform.system() == "Darwin" else rss / 1024.0


def summarise(trainer: str, rollouts: list[RolloutTiming], warmup: int, extra: dict | None = None) -> dict:
    """Aggregate measured rollouts into the numbers the README reports.

    Args:
        trainer: name shown in the table (``alarm_pl`` or ``trl``).
        rollouts: the measured rollouts (warm-up ones already dropped); at least one.
        warmup: how many rollouts ran before them (reported only).
        extra: more fields for the JSON line (versions, settings).

    Returns:
        A JSON-serialisable dict: totals, episodes/s and tokens/s over the whole measured span, per-phase mean and
        median seconds per rollout (``other`` = total − the phases measured), peak RSS in MiB.
    """
    if not rollouts:
        raise ValueError(f"{trainer}: no measured rollouts (need at least one after the {warmup} warm-up rollouts)")
    wall = sum(r.total for r in rollouts)
    episodes = sum(r.episodes for r in rollouts)
    tokens = sum(r.response_tokens for r in rollouts)
    phase_names = [p for p in PHASES if any(p in r.phases for r in rollouts)]
    per_phase = {p: [r.phases.get(p, 0.0) for r in rollouts] for p in phase_names}
    per_phase["other"] = [r.total - sum(r.phases.values()) for r in rollouts]
    per_phase["total"] = [r.total for r in rollouts]
    cpu = _cpu_summary(rollouts, phase_names)
    return {
        "trainer": trainer,
        "rollouts": len(rollouts),
        "warmup": warmup,
        "wall_s": wall,
        "episodes": episodes,
        "response_tokens": tokens,
        "episodes_per_s": episodes / wall,
        "tokens_per_s": tokens / wall,
        "phase_mean_s": {p: statistics.fmean(v) for p, v in per_phase.items()},
        "phase_median_s": {p: statistics.median(v) for p, v in per_phase.items()},
        "peak_rss_mib": peak_rss_mib(),
        "threads": _threads(),
        "loadavg": _loadavg(),
        **cpu,
        **(extra or {}),
    }


def _cpu_summary(rollouts: list[RolloutTiming], phase_names: list[str]) -> dict:
    """CPU-time counterparts of the wall numbers (empty when a rollout has no ``cpu_total``): episodes per CPU second
    and mean CPU seconds per phase (``other`` = the rollout's CPU time outside the phases)."""
    if any(r.cpu_total is None for r in rollouts):
        return {}
    cpu = sum(r.cpu_total for r in rollouts)
    per_phase = {p: [r.cpu_phases.get(p, 0.0) for r in rollouts] for p in phase_names}
    per_phase["other"] = [r.cpu_total - sum(r.cpu_phases.values()) for r in rollouts]
    per_phase["total"] = [r.cpu_total for r in rollouts]
    return {
        "cpu_s": cpu,
        "episodes_per_cpu_s": sum(r.episodes for r in rollouts) / cpu,
        "phase_cpu_mean_s": {p: statistics.fmean(v) for p, v in per_phase.items()},
    }


def _loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def _threads() -> int:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return os.cpu_count() or 1


def format_table(summary: dict) -> str:
    """A small fixed-width table of one summary: phase | mean s | median s | share of the rollout."""
    mean, median = summary["phase_mean_s"], summary["phase_median_s"]
    cpu = summary.get("phase_cpu_mean_s", {})
    total = mean["total"] or 1.0
    lines = [
        f"{summary['trainer']}: {summary['rollouts']} rollouts after {summary['warmup']} warm-up",
        f"{'phase':<10} {'mean s':>8} {'median s':>9} {'share':>6} {'CPU s':>7}",
    ]
    for phase, seconds in mean.items():
        cpu_s = f"{cpu[phase]:>7.3f}" if phase in cpu else f"{'':>7}"
        lines.append(f"{phase:<10} {seconds:>8.3f} {median[phase]:>9.3f} {100 * seconds / total:>5.1f}% {cpu_s}")
    per_cpu = f"   episodes/CPU-s {summary['episodes_per_cpu_s']:.2f}" if "episodes_per_cpu_s" in summary else ""
    lines.append(
        f"episodes/s {summary['episodes_per_s']:.2f}{per_cpu}   response tokens/s "
        f"{summary['tokens_per_s']:.1f}   peak RSS {summary['peak_rss_mib']:.0f} MiB   "
        f"torch threads {summary['threads']}   load {summary.get('loadavg')}"
    )
    return "\n".join(lines)


def report(summary: dict) -> None:
    """Print the table, then the summary as one ``BENCH_JSON {...}`` line (what ``run_all.sh`` parses)."""
    print(format_table(summary), flush=True)
    print(JSON_PREFIX + json.dumps(summary, sort_keys=True), flush=True)
