"""Side-by-side per-phase table of two benchmark runs and the throughput ratio.

Usage: python bench/compare.py ALARM_LOG TRL_LOG    (files holding the ``BENCH_JSON {...}`` line of each script)
"""

from __future__ import annotations

import json
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
    return json.loads(lines[-1][len(JSON_PREFIX):])


def comparison(ours: dict, peer: dict) -> str:
    """Table of mean seconds per rollout by phase for both trainers, then the episodes/s ratio ours ÷ peer."""
    present = {*ours["phase_mean_s"], *peer["phase_mean_s"]}
    phases = [p for p in (*PHASES, "other", "total") if p in present]
    name_a, name_b = ours["trainer"], peer["trainer"]
    slower = f"{name_b}/{name_a}"
    lines = [f"{'phase (s/rollout)':<18} {name_a:>9} {name_b:>9} {slower:>13}"]
    for phase in phases:
        a, b = ours["phase_mean_s"].get(phase, float("nan")), peer["phase_mean_s"].get(phase, float("nan"))
        lines.append(f"{phase:<18} {a:>9.3f} {b:>9.3f} {b / a if a else float('nan'):>12.2f}x")
    for key, label, fmt in (("episodes_per_s", "episodes/s", ".2f"), ("tokens_per_s", "resp. tokens/s", ".1f"),
                            ("peak_rss_mib", "peak RSS MiB", ".0f")):
        lines.append(f"{label:<18} {ours[key]:>9{fmt}} {peer[key]:>9{fmt}}")
    ratio = ours["episodes_per_s"] / peer["episodes_per_s"]
    lines.append(f"RATIO episodes/s {name_a} / {name_b} = {ratio:.2f}  "
                 f"({ours['rollouts']} vs {peer['rollouts']} measured rollouts, torch threads "
                 f"{ours['threads']} / {peer['threads']})")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(comparison(load_summary(sys.argv[1]), load_summary(sys.argv[2])))
