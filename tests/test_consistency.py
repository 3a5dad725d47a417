"""RewardConsistency against a brute-force pair-by-pair count, on one process and across two (gloo)."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alarm_pl.selection.metric import RewardConsistency

ASPECTS = ["grammar", "length", "flat"]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def brute_force(ha: list[float], hb: list[float], aa: list[list[float]], ab: list[list[float]]) -> dict:
    """PAPER.md §1 / §4 definitions, one pair at a time in plain Python (aa[i][k]: pair i, aspect k)."""
    report = {}
    for k, name in enumerate(ASPECTS):
        disagree = decisive = wins = losses = 0
        for i in range(len(ha)):
            dk = aa[i][k] - ab[i][k]
            if math.isnan(dk):
                continue
            sh, sk = _sign(ha[i] - hb[i]), _sign(dk)
            decisive += sh != 0
            disagree += sh != 0 and sk != 0 and sh != sk
            wins += sk > 0
            losses += sk < 0
        report[name] = {
            "inconsistency": disagree / decisive if decisive else math.nan,
            "win_rate": wins / (wins + losses) if wins + losses else math.nan,
            "n": float(decisive),
        }
    return report


def random_pairs(seed: int, n: int) -> tuple[list[float], list[float], list[list[float]], list[list[float]]]:
    """Small integer values so that ties are frequent; the "flat" aspect is identical on both sides (Δ = 0)."""
    rng = random.Random(seed)
    ha = [float(rng.randint(0, 2)) for _ in range(n)]
    hb = [float(rng.randint(0, 2)) for _ in range(n)]
    aa = [[float(rng.randint(0, 2)), float(rng.randint(0, 3)), 1.0] for _ in range(n)]
    ab = [[float(rng.randint(0, 2)), float(rng.randint(0, 3)), 1.0] for _ in range(n)]
    return ha, hb, aa, ab


def assert_reports_equal(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for name in expected:
        for key, value in expected[name].items():
            if math.isnan(value):
                assert math.isnan(got[name][key]), (name, key, got[name][key])
            else:
                assert got[name][key] == pytest.approx(value, abs=1e-6), (name, key)


def test_hand_computed_example() -> None:
    # 4 pairs. ΔH = [+1, -1, 0, +2]; grammar Δ = [+1, +1, -1, 0]; length Δ = [-1, -1, +1, -1]; flat Δ = 0.
    metric = RewardConsistency(ASPECTS)
    metric.update(
        torch.tensor([1.0, 0.0, 3.0, 2.0]),
        torch.tensor([0.0, 1.0, 3.0, 0.0]),
        torch.tensor([[1.0, 0.0, 5.0], [1.0, 0.0, 5.0], [0.0, 1.0, 5.0], [2.0, 0.0, 5.0]]),
        torch.tensor([[0.0, 1.0, 5.0], [0.0, 1.0, 5.0], [1.0, 0.0, 5.0], [2.0, 1.0, 5.0]]),
    )
    report = metric.compute()
    # grammar: decisive pairs 0, 1, 3 (3); disagree: pair 1 (ΔH − vs +) -> 1/3; wins 2 (pairs 0, 1), losses 1 -> 2/3
    assert report["grammar"]["inconsistency"] == pytest.approx(1 / 3)
    assert report["grammar"]["win_rate"] == pytest.approx(2 / 3)
    assert report["grammar"]["n"] == 3
    # length: disagree pairs 0 (+ vs −) and 3 (+ vs −); pair 1 agrees (− −) -> 2/3
    #         wins 1 (pair 2), losses 3 -> 1/4
    assert report["length"]["inconsistency"] == pytest.approx(2 / 3)
    assert report["length"]["win_rate"] == pytest.approx(1 / 4)
    # flat: never disagrees (0/3), never wins or loses -> win rate undefined
    assert report["flat"]["inconsistency"] == 0.0
    assert math.isnan(report["flat"]["win_rate"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_ties_in_several_updates(seed: int) -> None:
    ha, hb, aa, ab = random_pairs(seed, 60)
    metric = RewardConsistency(ASPECTS)
    for start in range(0, 60, 25):  # three updates of 25, 25 and 10 pairs
        sl = slice(start, start + 25)
        as_dict = lambda rows: {name: torch.tensor([r[k] for r in rows]) for k, name in enumerate(ASPECTS)}
        metric.update(torch.tensor(ha[sl]), torch.tensor(hb[sl]), as_dict(aa[sl]), as_dict(ab[sl]))
    assert_reports_equal(metric.compute(), brute_force(ha, hb, aa, ab))


finite = st.floats(min_value=-2, max_value=2, allow_nan=False).map(lambda x: round(x))
maybe_nan = st.one_of(finite, st.just(math.nan))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            finite, finite, st.lists(maybe_nan, min_size=3, max_size=3), st.lists(finite, min_size=3, max_size=3)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_property_matches_brute_force_including_nan_metrics(pairs) -> None:
    ha, hb, aa, ab = (
        [float(p[0]) for p in pairs],
        [float(p[1]) for p in pairs],
        [[float(v) for v in p[2]] for p in pairs],
        [[float(v) for v in p[3]] for p in pairs],
    )
    metric = RewardConsistency(ASPECTS)
    metric.update(torch.tensor(ha), torch.tensor(hb), torch.tensor(aa), torch.tensor(ab))
    assert_reports_equal(metric.compute(), brute_force(ha, hb, aa, ab))


def test_all_holistic_ties_give_nan_inconsistency() -> None:
    metric = RewardConsistency(["a"])
    metric.update(torch.zeros(3), torch.zeros(3), torch.tensor([[1.0], [0.0], [2.0]]), torch.zeros(3, 1))
    report = metric.compute()["a"]
    assert math.isnan(report["inconsistency"]) and report["n"] == 0
    assert report["win_rate"] == 1.0  # wins 2, losses 0


def test_update_errors_name_the_problem() -> None:
    metric = RewardConsistency(["a", "b"])
    with pytest.raises(KeyError, match="lacks \\['b'\\]"):
        metric.update(torch.zeros(2), torch.zeros(2), {"a": torch.zeros(2)}, {"a": torch.zeros(2), "b": torch.zeros(2)})
    with pytest.raises(ValueError, match="shape \\(2, 3\\), expected \\(2, 2\\)"):
        metric.update(torch.zeros(2), torch.zeros(2), torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="both be \\(N,\\)"):
        metric.update(torch.zeros(2), torch.zeros(3), torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="unique"):
        RewardConsistency(["a", "a"])


def test_set_counts_overwrites_and_invalidates_cache() -> None:
    metric = RewardConsistency(["a"])
    metric.update(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([[0.0]]), torch.tensor([[1.0]]))
    assert metric.compute()["a"]["inconsistency"] == 1.0
    metric.set_counts({"disagree": [1.0], "decisive_h": [4.0], "wins": [0.0], "losses": [0.0]})
    assert metric.compute()["a"]["inconsistency"] == 0.25
    assert metric.counts()["decisive_h"].tolist() == [4.0]


def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        ha, hb, aa, ab = random_pairs(100 + rank, 20 + 7 * rank)  # different data and sizes per rank
        metric = RewardConsistency(ASPECTS)
        metric.update(torch.tensor(ha), torch.tensor(hb), torch.tensor(aa), torch.tensor(ab))
        torch.save(
            {"report": metric.compute(), "counts": metric.counts(), "local": metric.decisive_h.clone()},
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_two_processes_sum_their_counts(tmp_path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    union = [a + b for a, b in zip(random_pairs(100, 20), random_pairs(101, 27))]
    expected = brute_force(*union)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert_reports_equal(result["report"], expected)
        assert result["counts"]["decisive_h"].tolist() == [expected[name]["n"] for name in ASPECTS]
        # after the sync the local state is restored: it is this rank's share only
        local = brute_force(*random_pairs(100 + rank, 20 + 7 * rank))
        assert result["local"].tolist() == [local[name]["n"] for name in ASPECTS]


# ---- one definition: training-time selection and the evaluation report count alike (issue 7.11) -------------------

NAN = math.nan
# (H greedy, H sampled, grammar error rate greedy, sampled); grammar is lower-is-better, so its oriented Δ is −Δ.
PAIRS = [
    (1.0, 0.0, 0.1, 0.3),  # ΔH +, oriented Δ + : decisive, consistent
    (0.0, 1.0, 0.1, 0.3),  # ΔH −, oriented Δ + : decisive, inconsistent
    (0.5, 0.5, 0.1, 0.9),  # ΔH 0 (tie): not decisive
    (2.0, 1.0, 0.2, 0.2),  # ΔH +, Δ 0 (tie): decisive, not inconsistent
    (1.0, 0.0, NAN, 0.1),  # metric undefined on one side: counts for nothing (not even as H-decisive)
    (NAN, 0.0, 0.1, 0.5),  # H undefined: never decisive
    (-1.0, 0.0, 0.5, 0.1),  # ΔH −, oriented Δ − : decisive, consistent
]
# decisive: pairs 0, 1, 3, 6 -> 4; inconsistent: pair 1 -> 1/4


def selection_inconsistency(pairs) -> float:
    """Through training-time selection: the selection pass of ``AspectSelection`` on the module protocol."""
    from alarm_pl.callbacks.selection import AspectSelection
    from alarm_pl.config import SelectionConfig
    from alarm_pl.data.prompts import PromptBatch
    from alarm_pl.rewards.base import Score

    class Pairs:
        def score_prompts(self, batch, do_sample):
            column = 1 if do_sample else 0
            holistic = torch.tensor([p[column] for p in pairs], dtype=torch.float64)
            metric = torch.tensor([p[2 + column] for p in pairs], dtype=torch.float64)
            zeros = torch.zeros(len(pairs), 1)
            return holistic, {"grammar": Score(zeros, zeros.bool(), metric, higher_is_better=False)}

    callback = AspectSelection(SelectionConfig(mode="auto", num_prompts=len(pairs), min_pairs=1), ["grammar"])
    batch = PromptBatch([f"p{i}" for i in range(len(pairs))], [None] * len(pairs), [{}] * len(pairs))
    callback.selection_pass(Pairs(), [batch], len(pairs))
    return callback.inconsistency["grammar"]


def report_inconsistency(pairs, tmp_path) -> float:
    """Through the evaluation report: two generation files (greedy, sampled) written, read back and compared."""
    from alarm_pl.eval.records import GenerationRecord, read_generations, write_generations
    from alarm_pl.eval.report import reward_results
    from alarm_pl.eval.winrate import align_by_prompt

    systems = {}
    for column, name in enumerate(["greedy", "sampled"]):
        records = [
            GenerationRecord(
                prompt=f"p{i}",
                generation=name,
                holistic=p[column],
                length=1,
                aspects={"grammar": p[2 + column]},
                aspect_higher_is_better={"grammar": False},
            )
            for i, p in enumerate(pairs)
        ]
        write_generations(tmp_path / f"{name}.jsonl", records)  # NaN is written as null and read back as NaN
        systems[name] = read_generations(tmp_path / f"{name}.jsonl")
    result = reward_results(align_by_prompt(systems))["consistency"]["grammar"]
    return NAN if result["inconsistency"] is None else result["inconsistency"]


def test_selection_and_report_give_the_same_inconsistency(tmp_path) -> None:
    assert selection_inconsistency(PAIRS) == 0.25
    assert report_inconsistency(PAIRS, tmp_path) == 0.25


# Each example writes and reads generation files, and the assume() below rejects draws without a decisive pair:
# on a loaded CI machine Hypothesis's timing-based health checks failed the test without any property failing.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(st.tuples(maybe_nan, maybe_nan, maybe_nan, maybe_nan), min_size=1, max_size=10))
def test_property_selection_and_report_agree_with_nan_and_ties(tmp_path_factory, pairs) -> None:
    pairs = [tuple(float(v) for v in p) for p in pairs]
    # without an H-decisive pair whose metric is known, selection refuses to decide (tested in test_selection_pass.py)
    assume(any(not math.isnan(p[0] - p[1]) and p[0] != p[1] and not math.isnan(p[2] - p[3]) for p in pairs))
    expected = brute_force(
        [p[0] for p in pairs], [p[1] for p in pairs], [[-p[2], 0, 0] for p in pairs], [[-p[3], 0, 0] for p in pairs]
    )["grammar"]["inconsistency"]
    assert selection_inconsistency(pairs) == pytest.approx(expected)
    assert report_inconsistency(pairs, tmp_path_factory.mktemp("report")) == pytest.approx(expected)
