"""The four reward strategies on a hand-made batch of mixed lengths (4, 2, 0, 3) with garbage on padding."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alarm_pl.rewards.compose import STRATEGIES, compose_rewards, gate_pass

TAU = 0.5
W_H = 3.0
GARBAGE = 9.0


def _case():
    lengths = [4, 2, 0, 3]
    holistic = torch.tensor([-1.0, 0.5, 2.0, 0.25])  # row 1 sits exactly on τ = 0.5; row 2 is empty
    aspects = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.4],
            [0.5, 0.6, GARBAGE, GARBAGE],
            [GARBAGE, GARBAGE, GARBAGE, GARBAGE],
            [0.7, 0.8, 0.9, GARBAGE],
        ]
    )
    mask = torch.arange(4).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (4, 4)
    return holistic, aspects, mask


# w_h·H on each row's own last real token: -3 at t=3 ; 1.5 at t=1 ; nothing (empty row) ; 0.75 at t=2
HOLISTIC_ONLY = [[0, 0, 0, -3.0], [0, 1.5, 0, 0], [0, 0, 0, 0], [0, 0, 0.75, 0]]
ASPECT_ONLY = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0, 0], [0, 0, 0, 0], [0.7, 0.8, 0.9, 0]]
# the sum of both: 0.4 - 3 = -2.6 ; 0.6 + 1.5 = 2.1 ; 0.9 + 0.75 = 1.65
WEIGHTED_SUM = [[0.1, 0.2, 0.3, -2.6], [0.5, 2.1, 0, 0], [0, 0, 0, 0], [0.7, 0.8, 1.65, 0]]
# gate H ≥ 0.5: [no, yes (tie), yes, no] -> rows 0 and 3 holistic_only, rows 1 and 2 weighted_sum
HIERARCHICAL = [HOLISTIC_ONLY[0], WEIGHTED_SUM[1], WEIGHTED_SUM[2], HOLISTIC_ONLY[3]]


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("holistic_only", HOLISTIC_ONLY),
        ("aspect_only", ASPECT_ONLY),
        ("weighted_sum", WEIGHTED_SUM),
        ("hierarchical", HIERARCHICAL),
    ],
)
def test_strategies_by_hand(strategy, expected):
    holistic, aspects, mask = _case()
    out = compose_rewards(holistic, aspects, mask, strategy, threshold=TAU, holistic_weight=W_H)
    torch.testing.assert_close(out, torch.tensor(expected))
    assert out[~mask].eq(0).all()  # exactly 0 on padding despite the garbage
    assert out[2].eq(0).all()  # the empty row gets nothing


def test_gate_pass_tie_passes():
    assert gate_pass(torch.tensor([0.4999, 0.5, 0.5001, -10.0]), 0.5).tolist() == [False, True, True, False]


def test_hierarchical_tie_gets_aspect_rewards():
    # one row, H exactly on τ: aspects count; just below: they do not
    aspects = torch.tensor([[1.0, 1.0]])
    mask = torch.tensor([[True, True]])
    at = compose_rewards(torch.tensor([0.6]), aspects, mask, "hierarchical", threshold=0.6, holistic_weight=5.0)
    below = compose_rewards(torch.tensor([0.59]), aspects, mask, "hierarchical", threshold=0.6, holistic_weight=5.0)
    torch.testing.assert_close(at, torch.tensor([[1.0, 1.0 + 3.0]]))  # 1 + 5*0.6
    torch.testing.assert_close(below, torch.tensor([[0.0, 2.95]]))  # 5*0.59


def test_float_mask_is_accepted():
    holistic, aspects, mask = _case()
    out = compose_rewards(holistic, aspects, mask.float(), "weighted_sum", threshold=TAU, holistic_weight=W_H)
    torch.testing.assert_close(out, torch.tensor(WEIGHTED_SUM))


def test_unknown_strategy_lists_valid_ones():
    holistic, aspects, mask = _case()
    with pytest.raises(ValueError, match="'alarm'") as info:
        compose_rewards(holistic, aspects, mask, "alarm", threshold=TAU, holistic_weight=W_H)
    assert all(name in str(info.value) for name in STRATEGIES)


def test_shape_mismatch_is_reported():
    holistic, aspects, mask = _case()
    with pytest.raises(ValueError, match=r"holistic \(3,\)"):
        compose_rewards(holistic[:3], aspects, mask, "hierarchical", threshold=TAU, holistic_weight=W_H)


@st.composite
def _batches(draw):
    batch = draw(st.integers(1, 5))
    width = draw(st.integers(1, 6))
    lengths = torch.tensor(draw(st.lists(st.integers(0, width), min_size=batch, max_size=batch)))
    floats = st.floats(-5, 5, allow_nan=False, width=32)
    holistic = torch.tensor(draw(st.lists(floats, min_size=batch, max_size=batch)))
    aspects = torch.tensor(draw(st.lists(floats, min_size=batch * width, max_size=batch * width))).view(batch, width)
    mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    return holistic, aspects, mask, draw(floats), draw(st.floats(0, 5, width=32))


@settings(max_examples=60, deadline=None)
@given(_batches())
def test_property_padding_zero_and_hierarchy_is_rowwise_choice(batch):
    holistic, aspects, mask, tau, w_h = batch
    out = {s: compose_rewards(holistic, aspects, mask, s, threshold=tau, holistic_weight=w_h) for s in STRATEGIES}
    for reward in out.values():
        assert reward[~mask].eq(0).all()
    passed = holistic >= tau
    torch.testing.assert_close(out["hierarchical"][passed], out["weighted_sum"][passed])
    torch.testing.assert_close(out["hierarchical"][~passed], out["holistic_only"][~passed])
    torch.testing.assert_close(out["weighted_sum"], out["holistic_only"] + out["aspect_only"])
    # holistic_only carries exactly w_h·H once per non-empty row
    nonempty = mask.any(dim=1)
    torch.testing.assert_close(out["holistic_only"].sum(dim=1), torch.where(nonempty, w_h * holistic, 0.0))
