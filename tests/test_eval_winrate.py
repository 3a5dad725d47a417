"""Win rates and consistency by reward/metric against hand-computed examples (PAPER.md §1, §4)."""

import math

import pytest

from alarm_pl.eval.records import GenerationRecord
from alarm_pl.eval.winrate import (
    PairCounts,
    align_by_prompt,
    aspect_directions,
    average_win_rates,
    compare_values,
    inconsistency,
    pairwise_counts,
)

NAN = math.nan


def _rec(prompt, holistic=0.0, **aspects):
    return GenerationRecord(
        prompt=prompt, generation=f"out {prompt}", reference=None, holistic=holistic, aspects=aspects, length=3
    )


def test_compare_values_counts_direction_and_excludes_ties():
    a = [1.0, 2.0, 3.0, 4.0, NAN]
    b = [0.0, 2.0, 5.0, 1.0, 1.0]
    # higher is better: wins at 1>0 and 4>1; loss at 3<5; ties at 2=2 and at NaN -> 2 / (2 + 1)
    assert compare_values(a, b) == PairCounts(wins=2, losses=1, ties=2)
    assert compare_values(a, b).win_rate == pytest.approx(2 / 3)
    # an error rate (lower wins): the same comparisons flip -> 1 / (1 + 2)
    assert compare_values(a, b, higher_is_better=False) == PairCounts(wins=1, losses=2, ties=2)
    assert compare_values(a, b, higher_is_better=False).win_rate == pytest.approx(1 / 3)
    assert compare_values([1.0, NAN], [1.0, 2.0]).win_rate is None  # no decisive prompt
    with pytest.raises(ValueError, match="align"):
        compare_values([1.0], [1.0, 2.0])


def test_pairwise_counts_and_avg_column():
    values = {"A": [3.0, 1.0, 2.0, 0.0], "B": [1.0, 2.0, 2.0, 1.0], "C": [0.0, 0.0, 5.0, 0.0]}
    counts = pairwise_counts(values)
    # A vs B: 3>1 win, 1<2 loss, 2=2 tie, 0<1 loss -> 1/3; A vs C: win, win, loss, tie -> 2/3
    # B vs C: win, win, loss, win -> 3/4
    assert counts[("A", "B")] == PairCounts(1, 2, 1) and counts[("B", "A")] == PairCounts(2, 1, 1)
    assert counts[("A", "C")] == PairCounts(2, 1, 1) and counts[("B", "C")] == PairCounts(3, 1, 0)
    avg = average_win_rates(["A", "B", "C"], counts)
    assert avg["A"] == pytest.approx((1 / 3 + 2 / 3) / 2)  # 0.5
    assert avg["B"] == pytest.approx((2 / 3 + 3 / 4) / 2)  # 0.7083
    assert avg["C"] == pytest.approx((1 / 3 + 1 / 4) / 2)  # C vs A = 1/3, C vs B = 1/4 -> 0.2917
    # an undefined rate is left out of the mean, not counted as 0
    counts[("A", "B")] = PairCounts(0, 0, 4)
    assert average_win_rates(["A", "B", "C"], counts)["A"] == pytest.approx(2 / 3)


def test_inconsistency_two_systems_by_hand():
    holistic = {"A": [1.0, 1.0, 0.0, 2.0], "B": [0.0, 1.0, 1.0, 2.0]}
    metric = {"A": [0.0, 5.0, 3.0, 1.0], "B": [1.0, 4.0, 3.0, 1.0]}
    # prompt 1: dH=+1, dm=-1 -> inconsistent; prompt 2: dH=0 -> not counted; prompt 3: dH=-1, dm=0 -> decisive,
    # not inconsistent; prompt 4: dH=0. -> 1 / 2
    result = inconsistency(holistic, metric)
    assert (result.inconsistent, result.decisive, result.inconsistency) == (1, 2, 0.5)
    # as an error rate, prompt 1's metric difference is oriented +1 and agrees with H -> 0 / 2
    assert inconsistency(holistic, metric, higher_is_better=False).inconsistency == 0.0
    assert inconsistency({"A": [1.0], "B": [1.0]}, {"A": [0.0], "B": [1.0]}).inconsistency is None


def test_inconsistency_counts_every_pair_of_three_systems():
    holistic = {"A": [2.0, 0.0], "B": [1.0, 0.0], "C": [0.0, 1.0]}
    metric = {"A": [0.0, 1.0], "B": [1.0, 0.0], "C": [2.0, 2.0]}
    # pair A-B: p1 dH=+ dm=- inconsistent; p2 dH=0.   pair A-C: p1 dH=+ dm=- inconsistent; p2 dH=- dm=- consistent.
    # pair B-C: p1 dH=+ dm=- inconsistent; p2 dH=- dm=- consistent.  -> 3 inconsistent / 5 decisive
    result = inconsistency(holistic, metric)
    assert (result.inconsistent, result.decisive) == (3, 5)
    assert result.inconsistency == pytest.approx(0.6)


def test_align_by_prompt_matches_reports_missing_and_rejects_duplicates():
    systems = {"A": [_rec("p2", 1.0), _rec("p1", 2.0), _rec("p3")], "B": [_rec("p1", 0.0), _rec("p2", 3.0)]}
    alignment = align_by_prompt(systems)
    assert alignment.prompts == ("p2", "p1")  # common prompts, in the first file's order
    assert alignment.missing == {"A": (), "B": ("p3",)}
    assert alignment.values("holistic") == {"A": [1.0, 2.0], "B": [3.0, 0.0]}
    assert alignment.values("length") == {"A": [3.0, 3.0], "B": [3.0, 3.0]}
    with pytest.raises(ValueError, match=r"system 'B': record 2 repeats the prompt 'p1'"):
        align_by_prompt({"A": [_rec("p1")], "B": [_rec("p1"), _rec("p1")]})
    with pytest.raises(ValueError, match="share no prompt"):
        align_by_prompt({"A": [_rec("p1")], "B": [_rec("p2")]})
    with pytest.raises(ValueError, match="at least two"):
        align_by_prompt({"A": [_rec("p1")]})


def test_missing_aspect_is_nan_and_directions_are_checked():
    a = GenerationRecord(
        prompt="p",
        generation="x",
        holistic=0.0,
        length=1,
        aspects={"grammar": 0.1},
        aspect_higher_is_better={"grammar": False},
    )
    b = GenerationRecord(prompt="p", generation="y", holistic=0.0, length=1, aspects={"fluency": 2.0})
    alignment = align_by_prompt({"A": [a], "B": [b]})
    grammar = alignment.values("grammar")
    assert grammar["A"] == [0.1] and math.isnan(grammar["B"][0])
    assert aspect_directions(alignment) == {"grammar": False, "fluency": True}  # undeclared: higher, warned
    assert aspect_directions(alignment, lower_is_better=["fluency"]) == {"grammar": False, "fluency": False}
    c = GenerationRecord(
        prompt="p",
        generation="z",
        holistic=0.0,
        length=1,
        aspects={"grammar": 0.2},
        aspect_higher_is_better={"grammar": True},
    )
    with pytest.raises(ValueError, match="aspect 'grammar': system 'C' declares higher-is-better, system 'A'"):
        aspect_directions(align_by_prompt({"A": [a], "C": [c]}))
