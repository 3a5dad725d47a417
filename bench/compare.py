"""Side-by-side per-phase tables of benchmark pairs and the throughput ratio, with the median over the pairs.

Usage: python bench/compare.py OURS_LOG PEER_LOG [OURS_LOG PEER_LOG ...]
(files holding the ``BENCH_JSON {...}`` line of each script; each pair ran back to back on the same machine)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import JSON_PREFIX, PHASES  # noqa: E402


def load_summary(path: str) -> dict:
    """The last ``BENCH_JSON`` line of a log file, parsed.

    Raises:
        ValueError: the file has no such line (the benchmark failed; its log says why).
    """
    lines = [line for line in Path(path).read_text().splitlines() if line.startswith(JSON_PREFIX)]
    if not lines:
        raise ValueError(f"{path}: no '{JSON_PREFIX.strip()}' line; the benchmark did not finish (see this log)")
    return json.loads(lines[-1][len(JSON_PREFIX) :])


def _phases(ours: dict, peer: dict) -> list[str]:
    present = {*ours["phase_mean_s"], *peer["phase_mean_s"]}
    return [p for p in (*PHASES, "other", "total") if p in present]


def comparison(ours: dict, peer: dict) -> str:
    """Table of mean wall (and CPU, where measured) seconds per rollout by phase for both trainers, then the
    episodes/s ratio ours ÷ peer."""
    name_a, name_b = ours["trainer"], peer["trainer"]
    cpu_a, cpu_b = ours.get("phase_cpu_mean_s", {}), peer.get("phase_cpu_mean_s", {})
    lines = [
        f"{'phase (s/rollout)':<18} {name_a:>9} {name_b:>9} {name_b + '/' + name_a:>13}"
        f" {'CPU ' + name_a:>13} {'CPU ' + name_b:>11}"
    ]
    nan = float("nan")
    for phase in _phases(ours, peer):
        a, b = ours["phase_mean_s"].get(phase, nan), peer["phase_mean_s"].get(phase, nan)
        lines.append(
            f"{phase:<18} {a:>9.3f} {b:>9.3f} {b / a if a else nan:>12.2f}x"
            f" {cpu_a.get(phase, nan):>13.3f} {cpu_b.get(phase, nan):>11.3f}"
        )
    for key, label, fmt in (
        ("episodes_per_s", "episodes/s", ".2f"),
        ("tokens_per_s", "resp. tokens/s", ".1f"),
        ("episodes_per_cpu_s", "episodes/CPU-s", ".2f"),
        ("peak_rss_mib", "peak RSS MiB", ".0f"),
    ):
        lines.append(f"{label:<18} {ours.get(key, nan):>9{fmt}} {peer.get(key, nan):>9{fmt}}")
    lines.append(
        f"RATIO episodes/s {name_a} / {name_b} = {ratio(ours, peer):.2f}  "
        f"({ours['rollouts']} vs {peer['rollouts']} measured rollouts, torch threads "
        f"{ours['threads']} / {peer['threads']}, load {_load(ours)} / {_load(peer)})"
    )
    return "\n".join(lines)


def ratio(ours: dict, peer: dict, key: str = "episodes_per_s") -> float:
    """ours ÷ peer of a throughput field (NaN when either lacks it)."""
    return ours.get(key, float("nan")) / peer[key] if peer.get(key) else float("nan")


def median_summary(pairs: list[tuple[dict, dict]]) -> str:
    """Median over the pairs of the episodes/s ratio, the episodes-per-CPU-second ratio and each phase's
    peer ÷ ours seconds (a phase where that is below 1 is slower in ours)."""

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} (pairs: {', '.join(f'{v:.2f}' for v in values)})"

    ours0, peer0 = pairs[0]
    lines = [
        f"MEDIAN over {len(pairs)} pairs",
        f"episodes/s {ours0['trainer']} / {peer0['trainer']}: {med([ratio(a, b) for a, b in pairs])}",
    ]
    if all("episodes_per_cpu_s" in a and "episodes_per_cpu_s" in b for a, b in pairs):
        lines.append(
            f"episodes/CPU-s {ours0['trainer']} / {peer0['trainer']}: "
            f"{med([ratio(a, b, 'episodes_per_cpu_s') for a, b in pairs])}"
        )
    for phase in _phases(ours0, peer0):
        values = [
            b["phase_mean_s"].get(phase, float("nan")) / a["phase_mean_s"][phase]
            for a, b in pairs
            if a["phase_mean_s"].get(phase)
        ]
        if values:
            lines.append(f"  {phase:<10} {peer0['trainer']}/{ours0['trainer']} seconds: {med(values)}")
    return "\n".join(lines)


def _load(summary: dict) -> str:
    load = summary.get("loadavg")
    return f"{load[0]:.1f}" if load else "?"


def main(paths: list[str]) -> None:
    if len(paths) < 2 or len(paths) % 2:
        sys.exit(__doc__)
    pairs = [(load_summary(a), load_summary(b)) for a, b in zip(paths[::2], paths[1::2])]
    for i, (ours, peer) in enumerate(pairs, 1):
        print(f"-- pair {i}" if len(pairs) > 1 else "", comparison(ours, peer), sep="\n")
    if len(pairs) > 1:
        print(median_summary(pairs))


if __name__ == "__main__":
    main(sys.argv[1:])
