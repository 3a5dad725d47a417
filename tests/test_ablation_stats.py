"""The ablation's statistics on known numbers: Student-t intervals, per-run test metrics and win rates over seeds."""

from __future__ import annotations

import math

import pytest
import sacrebleu

from alarm_pl.ablation.stats import (
    SENTENCE_BLEU,
    SENTENCE_CHRF,
    run_metrics,
    summarise_win_rates,
    t_interval,
    with_sentence_metrics,
)
from alarm_pl.eval.records import GenerationRecord


def test_t_interval_by_hand():
    # 1..5: mean 3, s = √(10/4) = 1.581139, t(0.975, 4) = 2.776445, half = 2.776445 · 1.581139 / √5 = 1.963243
    interval = t_interval([1, 2, 3, 4, 5])
    assert (interval.mean, interval.n) == (3.0, 5)
    assert interval.sd == pytest.approx(1.581139, abs=1e-6)
    assert (interval.low, interval.high) == pytest.approx((3 - 1.963243, 3 + 1.963243), abs=1e-5)
    # two seeds: s = √2, t(0.975, 1) = 12.706205, half = 12.706205 · √2 / √2
    pair = t_interval([2.0, 4.0])
    assert (pair.low, pair.high) == pytest.approx((3 - 12.706205, 3 + 12.706205), abs=1e-5)
    # bounds clip the interval (one side here: 3 − 1.963 = 1.037 stays, 4.963 becomes 4.5), never the mean
    bounded = t_interval([1, 2, 3, 4, 5], bounds=(0.0, 4.5))
    assert (bounded.mean, bounded.low, bounded.high) == pytest.approx((3.0, 3 - 1.963243, 4.5), abs=1e-5)
    # 90 %: t(0.95, 4) = 2.131847
    assert t_interval([1, 2, 3, 4, 5], 0.90).high == pytest.approx(3 + 2.131847 * 1.581139 / math.sqrt(5), abs=1e-5)


def test_t_interval_leaves_out_missing_values_and_needs_two():
    assert t_interval([None, 7.0, math.nan]).to_json() == {
        "mean": 7.0,
        "ci_low": None,
        "ci_high": None,
        "sd": None,
        "n": 1,
        "confidence": 0.95,
    }
    assert t_interval([]).mean is None and t_interval([]).n == 0
    constant = t_interval([5.0, 5.0, 5.0])
    assert (constant.low, constant.high, constant.sd) == (5.0, 5.0, 0.0)


def _record(prompt, generation, reference, holistic, grammar, length, degenerate=False):
    return GenerationRecord(
        prompt=prompt,
        generation=generation,
        reference=reference,
        holistic=holistic,
        degenerate=degenerate,
        aspects={"grammar": grammar},
        aspect_higher_is_better={"grammar": False},
        length=length,
    )


def test_run_metrics_and_sentence_metrics():
    records = [
        _record("p1", "The dog eats.", "The dog eats.", 1.0, 0.0, 4),
        _record("p2", "A cat", "The cat sleeps.", -0.5, math.nan, 2),
        _record("p3", "", "Where is she?", 0.5, 0.5, 1, degenerate=True),
    ]
    metrics = run_metrics(records)
    hyps, refs = ["The dog eats.", "A cat", ""], [["The dog eats.", "The cat sleeps.", "Where is she?"]]
    assert metrics["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, refs).score)
    assert metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, refs).score)
    assert metrics["holistic"] == pytest.approx(1.0 / 3)
    assert metrics["aspect/grammar"] == pytest.approx(0.25)  # the NaN is left out: (0 + 0.5) / 2
    assert metrics["length"] == pytest.approx(7 / 3) and metrics["degenerate"] == pytest.approx(1 / 3)
    extended = with_sentence_metrics(records)
    assert extended[0].aspects[SENTENCE_CHRF] == pytest.approx(100.0)
    assert extended[1].aspects[SENTENCE_BLEU] == pytest.approx(
        sacrebleu.sentence_bleu("A cat", ["The cat sleeps."]).score
    )
    assert extended[1].aspect_higher_is_better[SENTENCE_CHRF] is True and extended[1].aspects["grammar"] != 0
    no_reference = _record("p", "x", None, 0.0, 0.0, 1)
    assert with_sentence_metrics([no_reference]) == [no_reference] and "chrf" not in run_metrics([no_reference])


def _table(rates):
    """``{"pairs": a -> b -> {"win_rate": r}}`` from ``{(a, b): r}`` (b's rate against a is 1 − r)."""
    pairs = {}
    for (a, b), r in rates.items():
        pairs.setdefault(a, {})[b] = {"win_rate": r}
        pairs.setdefault(b, {})[a] = {"win_rate": None if r is None else 1 - r}
    return {"pairs": pairs}


def test_win_rates_over_seeds_by_hand():
    seed0 = _table({("A", "B"): 0.6, ("A", "start"): 0.9, ("B", "start"): 0.7})
    seed1 = _table({("A", "B"): 0.8, ("A", "start"): 0.7, ("B", "start"): None})  # B vs start: every prompt tied
    summary = summarise_win_rates({0: seed0, 1: seed1}, ["A", "B", "start"], avg_over=["A", "B"])
    assert summary["pairs"]["A"]["B"].mean == pytest.approx(0.7)
    assert summary["pairs"]["A"]["B"].sd == pytest.approx(math.sqrt(0.02))  # (0.6, 0.8): s = 0.141421
    assert summary["pairs"]["B"]["start"].n == 1 and summary["pairs"]["B"]["start"].mean == pytest.approx(0.7)
    # Avg. is over the strategies only: A's Avg. per seed is its rate against B (0.6, 0.8), never against start
    assert summary["avg"]["A"].mean == pytest.approx(0.7) and summary["avg"]["B"].mean == pytest.approx(0.3)
    # start's Avg. per seed: mean of its rates against A and B = (0.1 + 0.3) / 2 = 0.2; seed 1: 0.3 (B tied out)
    assert summary["avg"]["start"].mean == pytest.approx(0.25)
    # unclipped, A's Avg. interval would be 0.7 ± 12.706205 · √0.02 / √2 = 0.7 ± 1.27: a win rate stays in [0, 1]
    assert (summary["avg"]["A"].low, summary["avg"]["A"].high) == (0.0, 1.0)
    # A vs start (0.9, 0.7): 0.8 ± 1.2706 → clipped on both sides as well; B vs start has one seed: no interval
    assert (summary["pairs"]["A"]["start"].low, summary["pairs"]["A"]["start"].high) == (0.0, 1.0)
    assert summary["pairs"]["B"]["start"].low is None


def test_active_aspects_are_marked_unused_under_holistic_only():
    from alarm_pl.ablation.report import active_aspects_cell

    assert active_aspects_cell("hierarchical,mode=auto", ["grammar", "spelling"]) == "grammar, spelling"
    assert active_aspects_cell("holistic_only,mode=auto", ["grammar"]) == "(grammar; unused)"
    assert active_aspects_cell("holistic_only", []) == "–"
