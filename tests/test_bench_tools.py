"""The arithmetic of bench/'s tooling (summaries, pair medians, growth fits), on hand-made numbers. Nothing here
times anything: speed is measured in bench/, never asserted in tests."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the scripts import each other by name, as when run from bench/
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


benchlib, compare, scaling = _load("benchlib"), _load("compare"), _load("scaling")


def _summary(trainer: str, phases: list[dict], totals: list[float], cpu: list[float] | None = None) -> dict:
    rollouts = [
        benchlib.RolloutTiming(t, p, 16, 512, None if cpu is None else c, {k: v / 2 for k, v in p.items()})
        for t, p, c in zip(totals, phases, cpu or totals)
    ]
    return benchlib.summarise(trainer, rollouts, warmup=1)


def test_summarise_other_is_the_rollout_outside_the_phases():
    s = _summary("a", [{"generate": 0.5, "update": 1.0}, {"generate": 0.7, "update": 1.2}], [2.0, 2.0], [1.0, 1.0])
    assert s["phase_mean_s"]["generate"] == pytest.approx(0.6) and s["phase_mean_s"]["update"] == pytest.approx(1.1)
    assert s["phase_mean_s"]["other"] == pytest.approx((0.5 + 0.1) / 2)  # 2 − 1.5, 2 − 1.9
    assert s["episodes_per_s"] == pytest.approx(32 / 4.0) and s["tokens_per_s"] == pytest.approx(1024 / 4.0)
    # CPU: phases count half their wall seconds here; other = 1 − (0.25 + 0.5), 1 − (0.35 + 0.6)
    assert s["episodes_per_cpu_s"] == pytest.approx(16.0)
    assert s["phase_cpu_mean_s"]["other"] == pytest.approx((0.25 + 0.05) / 2)
    with pytest.raises(ValueError, match="no measured rollouts"):
        benchlib.summarise("a", [], warmup=2)


def test_pair_medians():
    ours = [_summary("a", [{"generate": g}], [t]) for g, t in ((1.0, 2.0), (1.0, 4.0), (2.0, 2.0))]
    peer = [_summary("b", [{"generate": g}], [t]) for g, t in ((2.0, 3.0), (1.0, 4.0), (1.0, 8.0))]
    text = compare.median_summary(list(zip(ours, peer)))
    # episodes/s ratio = peer seconds ÷ ours: 1.5, 1.0, 4.0 → median 1.5; generate b/a: 2, 1, 0.5 → 1.0
    assert "episodes/s a / b: 1.50 (pairs: 1.50, 1.00, 4.00)" in text
    assert "generate   b/a seconds: 1.00 (pairs: 2.00, 1.00, 0.50)" in text
    assert "RATIO episodes/s a / b = 1.50" in compare.comparison(ours[0], peer[0])


def test_growth_exponent_and_grid():
    xs = [8, 16, 32, 64]
    assert scaling.slope(xs, [0.5 * x**1.5 for x in xs]) == pytest.approx(1.5)
    assert scaling.slope(xs, [3.0] * 4) == pytest.approx(0.0)
    assert scaling.slope(xs[-2:], [1.0 + x for x in xs[-2:]]) == pytest.approx(math.log(65 / 33) / math.log(2))
    assert math.isnan(scaling.slope([8], [1.0]))
    points = scaling.grid([8, 16, 64], [32, 128])
    assert points == [(8, 32), (16, 32), (16, 128), (64, 32)]  # the shared point (16, 32) once; by work, then batch


def test_scaling_refuses_lengths_past_the_tiny_models_positions():
    with pytest.raises(SystemExit):
        scaling.main(["run", "--lengths", "256"])
