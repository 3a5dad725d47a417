"""``mode: auto``: the selection pass on the starting policy (greedy vs sampled, ``num_prompts`` training prompts)
before the first rollout, its decision, and its checkpointed state (a resumed run does not pass again)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch
from selection_data import CANDIDATES, CONSISTENT, FakeScorer, prompt_batches, sampled_rollout

from alarm_pl.callbacks.selection import AspectSelection, take_prompts
from alarm_pl.config import SelectionConfig


def trainer(batches, world_size: int = 1) -> SimpleNamespace:
    """What the callback reads of a Lightning trainer in ``on_train_start``."""
    return SimpleNamespace(train_dataloader=batches, world_size=world_size)


class Untouchable:
    """A dataloader that must not be iterated."""

    def __iter__(self):
        raise AssertionError("the selection pass ran again")


def auto(**overrides) -> AspectSelection:
    return AspectSelection(
        SelectionConfig(**{"mode": "auto", "num_prompts": 10, "min_pairs": 4, **overrides}), CANDIDATES
    )


def test_take_prompts_cuts_the_last_batch() -> None:
    taken = list(take_prompts(prompt_batches([4, 4, 4]), 6))
    assert [len(b) for b in taken] == [4, 2]
    assert taken[1].prompts == ["prompt 4", "prompt 5"] and taken[1].indices == [4, 5]
    assert [len(b) for b in take_prompts(prompt_batches([4]), 9)] == [4]  # fewer there: what there is


def test_pass_decides_before_the_first_rollout_from_greedy_vs_sampled_pairs() -> None:
    scorer, callback = FakeScorer([CONSISTENT]), auto()
    callback.on_train_start(trainer(prompt_batches([4, 4, 4])), scorer)
    # 10 prompts: two whole batches and 2 of the third, each scored greedy then sampled
    assert scorer.log == [(4, False), (4, True), (4, False), (4, True), (2, False), (2, True)]
    # pairs: 4 + 4 as in selection_data (grammar 0/4, good 1/4, bad 2/4 each), then the first 2 pairs
    # (ΔH = [+, -]; grammar agrees on both, good agrees on both, bad disagrees on both):
    # grammar 0/10, good 2/10, bad (2 + 2 + 2)/10
    assert callback.history == [
        {
            "rollout": 0,
            "active": ["grammar"],
            "inconsistency": {"grammar": 0.0, "good": pytest.approx(0.2), "bad": pytest.approx(0.6)},
        }
    ]
    assert callback.decided and callback.active == ("grammar",)
    outs = [callback.on_rollout_scored(None, scorer, sampled_rollout()) for _ in range(3)]
    assert len(scorer.log) == 6  # decided once: rollouts cost no further generation
    assert all(o.active_aspects == ("grammar",) for o in outs)
    assert outs[0].stats["selection/bad/inconsistency"] == pytest.approx(0.6)
    assert "selection/warmup" not in outs[0].stats and callback.rollouts_seen == 3


def test_each_process_takes_its_share_of_the_prompts() -> None:
    scorer = FakeScorer([CONSISTENT])
    auto(num_prompts=10, min_pairs=1).on_train_start(trainer(prompt_batches([4, 4]), world_size=4), scorer)
    assert scorer.log == [(3, False), (3, True)]  # ceil(10 / 4) = 3 prompts on this process


def test_restored_decision_is_not_measured_again() -> None:
    original = auto()
    original.on_train_start(trainer(prompt_batches([4, 4, 4])), FakeScorer([CONSISTENT]))
    original.on_rollout_scored(None, None, sampled_rollout())
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = auto()
    resumed.load_state_dict(torch.load(buffer))
    scorer = FakeScorer([CONSISTENT])
    resumed.on_train_start(trainer(Untouchable()), scorer)
    out = resumed.on_rollout_scored(None, scorer, sampled_rollout())
    assert scorer.log == [] and out.active_aspects == ("grammar",)
    assert resumed.history == original.history and resumed.rollouts_seen == 2
    assert resumed.state_dict()["counts"]["decisive_h"].tolist() == [10.0, 10.0, 10.0]


def test_bound_and_restricted_candidates() -> None:
    callback = auto(aspects=["good", "bad"], max_inconsistency=0.6, top_k=None, min_pairs=1)
    callback.on_train_start(trainer(prompt_batches([4, 4, 4])), FakeScorer([CONSISTENT]))
    assert callback.active == ("good", "bad")  # 0.2 and 0.6 within the bound; grammar is not a candidate
    out = callback.on_rollout_scored(None, None, sampled_rollout())
    assert "selection/grammar/inconsistency" not in out.stats and out.stats["selection/grammar/active"] == 0.0


def test_pass_without_enough_decisive_pairs_is_a_clear_error() -> None:
    scorer = FakeScorer([CONSISTENT], holistic=[0.0] * 4)  # H ties on every pair: nothing is H-decisive
    with pytest.raises(RuntimeError, match=r"no candidate aspect has 4 pairs.*num_prompts.*mode: fixed"):
        auto().on_train_start(trainer(prompt_batches([4, 4, 4])), scorer)
    with pytest.warns(UserWarning, match=r"found 4 training prompts, fewer than the 10"):
        auto(min_pairs=1).on_train_start(trainer(prompt_batches([4])), FakeScorer([CONSISTENT]))


def test_a_rollout_before_the_pass_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="on_train_start"):
        auto().on_rollout_scored(None, FakeScorer([CONSISTENT]), sampled_rollout())
