"""Aspect selection: the pure decision rule, the config's validation, and the callback's fixed and online modes (the
auto mode's selection pass: ``test_selection_pass.py``)."""

from __future__ import annotations

import io
import math

import pytest
import torch
from selection_data import CANDIDATES, CONSISTENT, GRAMMAR_FLIPPED, FakeScorer, sampled_rollout

from alarm_pl.callbacks.selection import AspectSelection
from alarm_pl.config import SelectionConfig
from alarm_pl.rollout import Rollout
from alarm_pl.selection.rule import select_aspects


def run(callback: AspectSelection, module: FakeScorer, n: int) -> list[Rollout]:
    return [callback.on_rollout_scored(None, module, sampled_rollout()) for _ in range(n)]


# ---- the decision rule -------------------------------------------------------------------------------------------


def test_select_bound_and_top_k() -> None:
    inc = {"a": 0.25, "b": 0.125, "c": 0.5, "d": math.nan}
    assert select_aspects(inc, 0.25, None) == ("a", "b")  # at the bound is in; order of the input
    assert select_aspects(inc, None, 1) == ("b",)
    assert select_aspects(inc, None, 2) == ("a", "b")
    assert select_aspects(inc, None, None) == ("a", "b", "c")  # NaN never selected
    assert select_aspects(inc, 0.2, 2) == ("b",)  # both: at most 2, each within the bound
    assert select_aspects(inc, 0.0, 1) == ()
    assert select_aspects({"x": 0.25, "w": 0.25}, None, 1) == ("w",)  # tie -> alphabetical


def test_select_hysteresis_with_bound() -> None:
    inc = {"a": 0.375, "b": 0.25}
    # bound 0.25, h 0.125: active "a" at 0.375 <= 0.25 + 0.125 stays; new "b" at 0.25 > 0.25 - 0.125 is not added
    assert select_aspects(inc, 0.25, None, {"a"}, 0.125) == ("a",)
    # "a" exceeds the bound by more than h (0.5 > 0.375): dropped; "b" at 0.125 <= 0.125 added
    assert select_aspects({"a": 0.5, "b": 0.125}, 0.25, None, {"a"}, 0.125) == ("b",)
    # without hysteresis the plain rule applies
    assert select_aspects(inc, 0.25, None, {"a"}, 0.0) == ("b",)


def test_select_hysteresis_with_top_k() -> None:
    # active "a" 0.375 vs rival "b" 0.25: b beats a by 0.125, not more than h = 0.125 -> a kept (tie goes to current)
    assert select_aspects({"a": 0.375, "b": 0.25}, None, 1, {"a"}, 0.125) == ("a",)
    # b beats a by 0.25 > h -> a dropped, b added
    assert select_aspects({"a": 0.5, "b": 0.25}, None, 1, {"a"}, 0.125) == ("b",)
    # a NaN current aspect is dropped
    assert select_aspects({"a": math.nan, "b": 0.75}, None, 1, {"a"}, 0.125) == ("b",)


# ---- configuration ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "sometimes"}, "mode"),
        ({"aspects": ["a", "a"]}, "duplicates"),
        ({"max_inconsistency": 1.5}, "max_inconsistency"),
        ({"top_k": 0}, "top_k"),
        ({"mode": "auto", "top_k": None}, "needs max_inconsistency or top_k"),
        ({"warmup_rollouts": 0}, "warmup_rollouts"),
        ({"num_prompts": 0}, "num_prompts"),
        ({"min_pairs": 0}, "min_pairs"),
        ({"hysteresis": -0.1}, "hysteresis"),
        ({"decay": 0.0}, "decay"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SelectionConfig(**kwargs)


def test_unknown_aspect_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"model\.selection\.aspects names \['factuality'\].*candidates are"):
        AspectSelection(SelectionConfig(aspects=["grammar", "factuality"]), CANDIDATES)


# ---- fixed mode -------------------------------------------------------------------------------------------------


def test_fixed_mode_sets_the_listed_aspects_and_never_scores() -> None:
    module = FakeScorer([CONSISTENT])
    callback = AspectSelection(SelectionConfig(aspects=["bad", "grammar"]), CANDIDATES)
    rollout = sampled_rollout()
    out = callback.on_rollout_scored(None, module, rollout)
    assert out.active_aspects == ("grammar", "bad")  # candidates' order
    assert out.stats["selection/good/active"] == 0.0 and out.stats["selection/bad/active"] == 1.0
    assert out.stats["selection/num_active"] == 2.0 and out.stats["time/generate"] == 1.5
    callback.on_train_start(None, module)  # no selection pass either
    assert module.log == []
    assert rollout.active_aspects == () and "selection/num_active" not in rollout.stats  # input unchanged
    everything = AspectSelection(SelectionConfig(), CANDIDATES).on_rollout_scored(None, module, rollout)
    assert everything.active_aspects == tuple(CANDIDATES)
    nothing = AspectSelection(SelectionConfig(aspects=[]), CANDIDATES).on_rollout_scored(None, module, rollout)
    assert nothing.active_aspects == ()


# ---- online mode ------------------------------------------------------------------------------------------------


def online(hysteresis: float) -> AspectSelection:
    config = SelectionConfig(
        mode="online", warmup_rollouts=2, reselect_every=2, min_pairs=4, decay=0.5, hysteresis=hysteresis
    )
    return AspectSelection(config, CANDIDATES)


@pytest.mark.parametrize("hysteresis, after", [(0.0625, ("good",)), (0.625, ("grammar",))])
def test_online_reselects_with_decayed_counts_and_hysteresis(hysteresis: float, after: tuple) -> None:
    module = FakeScorer([CONSISTENT, CONSISTENT, GRAMMAR_FLIPPED])
    callback = online(hysteresis)
    outs = run(callback, module, 5)
    assert module.calls == 5
    assert [o.active_aspects for o in outs[:3]] == [(), ("grammar",), ("grammar",)]
    # grammar after warm-up: disagree 0, decisive 8. Rollout 3: 0·0.5 + 4 = 4 of 8·0.5 + 4 = 8 -> 0.5;
    # rollout 4: 4·0.5 + 4 = 6 of 8 -> 0.75. good stays 2·0.5 + 1 = 2 of 8 -> 0.25.
    assert outs[2].stats["selection/grammar/inconsistency"] == pytest.approx(0.5)
    assert outs[3].stats["selection/grammar/inconsistency"] == pytest.approx(0.75)
    assert outs[3].stats["selection/good/inconsistency"] == pytest.approx(0.25)
    # decision at rollout 4: 0.75 - h vs 0.25 -> switch with h = 1/16, keep grammar with h = 5/8 (0.125 < 0.25)
    assert outs[3].active_aspects == after and outs[4].active_aspects == after
    assert [entry["rollout"] for entry in callback.history] == [2, 4]


def test_state_dict_round_trip_continues_identically() -> None:
    greedy = [CONSISTENT, CONSISTENT, GRAMMAR_FLIPPED]
    original, module = online(0.0625), FakeScorer(greedy)
    run(original, module, 3)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = online(0.0625)
    resumed.load_state_dict(torch.load(buffer))
    resumed_module = FakeScorer(greedy)
    resumed_module.calls = module.calls
    for a, b in zip(run(original, module, 3), run(resumed, resumed_module, 3)):
        assert a.active_aspects == b.active_aspects and a.stats == b.stats
    assert resumed.history == original.history and resumed.rollouts_seen == 6
    assert resumed.state_dict()["counts"]["disagree"].tolist() == original.state_dict()["counts"]["disagree"].tolist()


def test_online_decides_after_the_warmup_and_measures_every_rollout() -> None:
    module = FakeScorer([CONSISTENT])
    config = SelectionConfig(mode="online", warmup_rollouts=3, min_pairs=4, reselect_every=100, decay=1.0)
    callback = AspectSelection(config, CANDIDATES)
    callback.on_train_start(None, module)  # online has no selection pass: it measures on the trained policy
    outs = run(callback, module, 5)
    assert [o.active_aspects for o in outs] == [(), (), ("grammar",), ("grammar",), ("grammar",)]
    assert module.log == [(4, False)] * 5  # one greedy scoring of the rollout's 4 prompts per rollout, never sampled
    assert [o.stats["selection/warmup"] for o in outs] == [1.0, 1.0, 0.0, 0.0, 0.0]
    # after 3 rollouts of 4 pairs: grammar 0/12, good 3/12, bad 6/12 (the grammar error rate is oriented first)
    third = outs[2].stats
    assert third["selection/grammar/inconsistency"] == 0.0
    assert third["selection/good/inconsistency"] == pytest.approx(0.25)
    assert third["selection/bad/inconsistency"] == pytest.approx(0.5)
    assert third["selection/grammar/active"] == 1.0 and third["selection/num_active"] == 1.0
    assert callback.history == [
        {"rollout": 3, "active": ["grammar"], "inconsistency": {"grammar": 0.0, "good": 0.25, "bad": 0.5}}
    ]


def test_online_waits_for_min_pairs() -> None:
    # H_a = H_b = 0 on every pair: no H-decisive pair, so no aspect's inconsistency is known
    module = FakeScorer([CONSISTENT], holistic=[0.0] * 4)
    callback = AspectSelection(SelectionConfig(mode="online", warmup_rollouts=2, min_pairs=1), CANDIDATES)
    with pytest.warns(UserWarning, match="min_pairs"):
        outs = run(callback, module, 4)
    assert all(o.active_aspects == () for o in outs) and module.calls == 4 and not callback.decided
    assert "selection/grammar/inconsistency" not in outs[-1].stats


def test_missing_greedy_score_is_a_clear_error() -> None:
    module = FakeScorer([{"grammar": [0.0] * 4, "good": [0.0] * 4}])
    callback = AspectSelection(SelectionConfig(mode="online"), CANDIDATES)
    with pytest.raises(KeyError, match="\\['bad'\\]"):
        callback.on_rollout_scored(None, module, sampled_rollout())


def test_load_state_dict_rejects_other_candidates() -> None:
    state = online(0.0).state_dict()
    other = AspectSelection(SelectionConfig(mode="online"), ["grammar", "good"])
    with pytest.raises(ValueError, match="candidate aspects"):
        other.load_state_dict(state)
