"""RewardComposition: the composed per-token reward at, below and above τ, degenerate rows, stats, no mutation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from alarm_pl.callbacks.composition import RewardComposition
from alarm_pl.config import RewardConfig
from alarm_pl.rewards.base import Score, ScoringInput
from alarm_pl.rollout import Rollout

LENGTHS = [4, 2, 3, 1]
# row 0: H = τ (passes); row 1: below; row 2: above; row 3: degenerate (its H passes, yet it gets no aspect reward)
HOLISTIC = [0.5, 0.25, 1.0, 1.0]
DEGENERATE = [False, False, False, True]


def make_rollout(active: tuple[str, ...] = ("grammar", "spelling")) -> Rollout:
    """B = 4, T = 4, right-padded. grammar: 0.25 on every real token; spelling: 0.5 on the last real token;
    length: 100 everywhere (never active). Padding of the aspect rewards holds garbage (7) that must not leak."""
    batch, width = len(LENGTHS), max(LENGTHS)
    lengths = torch.tensor(LENGTHS)
    positions = torch.arange(width).unsqueeze(0)  # (1, T)
    mask = positions < lengths.unsqueeze(1)  # (B, T)
    last = positions == (lengths - 1).unsqueeze(1)  # (B, T)
    garbage = torch.full(mask.shape, 7.0)
    grammar = torch.where(mask, torch.full(mask.shape, 0.25), garbage)
    spelling = torch.where(last, torch.full(mask.shape, 0.5), torch.where(mask, 0.0, garbage))
    ids = mask.long() * 5
    inputs = ScoringInput(
        prompts=["p"] * batch,
        responses=["r" * n for n in LENGTHS],
        references=[None] * batch,
        metadata=[{}] * batch,
        response_ids=ids,
        response_mask=mask,
        token_spans=[[(i, i + 1) for i in range(n)] for n in LENGTHS],
    )
    zeros = torch.zeros(mask.shape)
    holistic = torch.tensor(HOLISTIC)
    return Rollout(
        query_ids=ids,
        query_mask=mask,
        response_ids=ids,
        response_mask=mask,
        inputs=inputs,
        old_logprobs=zeros,
        ref_logprobs=zeros,
        values=zeros,
        scores={"holistic": Score.sequence(holistic, mask)},
        holistic_name="holistic",
        holistic=holistic,
        aspect_rewards={"grammar": grammar, "spelling": spelling, "length": torch.full(mask.shape, 100.0)},
        degenerate=torch.tensor(DEGENERATE),
        active_aspects=active,
        stats={"time/score": 2.0},
    )


def gate(strategy: str, rollout: Rollout) -> Rollout:
    return RewardComposition(RewardConfig(strategy=strategy, threshold=0.5, holistic_weight=2.0)).on_rollout_scored(
        None, None, rollout
    )


def test_hierarchical_at_below_and_above_threshold() -> None:
    out = gate("hierarchical", make_rollout())
    expected = torch.tensor(
        [
            [0.25, 0.25, 0.25, 1.75],  # H = τ passes: grammar everywhere, last += spelling 0.5 + w_h·H = 1.0
            [0.0, 0.5, 0.0, 0.0],  # H < τ: only w_h·H = 0.5 on its last token (index 1); padding exactly 0
            [0.25, 0.25, 2.75, 0.0],  # above: last = 0.25 + 0.5 + 2·1.0
            [2.0, 0.0, 0.0, 0.0],  # degenerate: w_h·H only, no aspect reward although H ≥ τ
        ]
    )
    assert torch.equal(out.token_rewards, expected)
    stats = out.stats
    assert stats["reward/gate_pass_rate"] == pytest.approx(2 / 3)  # rows 0, 2 of the 3 non-degenerate
    # per-response sums: 2.5, 0.5, 3.25, 2.0 -> 8.25 / 4
    assert stats["reward/total_mean"] == pytest.approx(2.0625)
    # holistic parts 1.0, 0.5, 2.0, 2.0 -> 5.5 / 4; aspect parts 1.5, 0, 1.25, 0 -> 2.75 / 4
    assert stats["reward/holistic_component_mean"] == pytest.approx(1.375)
    assert stats["reward/aspect_component_mean"] == pytest.approx(0.6875)
    assert stats["reward/grammar_mean"] == pytest.approx(0.4375)  # (4·0.25 + 3·0.25) / 4
    assert stats["reward/spelling_mean"] == pytest.approx(0.25)  # (0.5 + 0.5) / 4
    assert stats["reward/length_mean"] == 0.0 and stats["time/score"] == 2.0  # inactive: logged as 0, not left out


def test_weighted_sum_and_aspect_only_give_degenerate_rows_w_h_times_h_alone() -> None:
    weighted = gate("weighted_sum", make_rollout()).token_rewards
    # no gate: row 1 now gets its aspects too: [0.25, 0.25 + 0.5 + 0.5]; row 3 keeps w_h·H only
    assert torch.equal(weighted[1], torch.tensor([0.25, 1.25, 0.0, 0.0]))
    assert torch.equal(weighted[3], torch.tensor([2.0, 0.0, 0.0, 0.0]))
    aspect_only = gate("aspect_only", make_rollout())
    assert torch.equal(aspect_only.token_rewards[0], torch.tensor([0.25, 0.25, 0.25, 0.75]))
    # the degenerate row gets w_h·H on its last token under aspect_only too (the authors' rule, before any strategy)
    assert torch.equal(aspect_only.token_rewards[3], torch.tensor([2.0, 0.0, 0.0, 0.0]))
    assert aspect_only.stats["reward/holistic_component_mean"] == 0.5  # that 2.0 over 4 responses


def test_holistic_only_and_no_active_aspects_give_the_holistic_reward_alone() -> None:
    expected = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    assert torch.equal(gate("holistic_only", make_rollout()).token_rewards, expected)
    out = gate("hierarchical", make_rollout(active=()))
    assert torch.equal(out.token_rewards, expected)
    assert out.stats["reward/aspect_component_mean"] == 0.0


def test_input_rollout_is_not_changed() -> None:
    rollout = make_rollout()
    before = {name: value.clone() for name, value in rollout.aspect_rewards.items()}
    holistic, stats = rollout.holistic.clone(), dict(rollout.stats)
    out = gate("hierarchical", rollout)
    assert rollout.token_rewards is None and out.token_rewards is not None
    assert rollout.stats == stats and out.stats is not rollout.stats
    assert torch.equal(rollout.holistic, holistic)
    assert all(torch.equal(rollout.aspect_rewards[name], before[name]) for name in before)
    assert out.active_aspects == rollout.active_aspects and out.aspect_rewards is rollout.aspect_rewards


def test_unknown_active_aspect_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="factuality"):
        gate("hierarchical", make_rollout(active=("factuality",)))


def test_all_degenerate_gate_pass_rate_is_zero() -> None:
    rollout = dataclasses.replace(make_rollout(), degenerate=torch.ones(4, dtype=torch.bool))
    assert gate("hierarchical", rollout).stats["reward/gate_pass_rate"] == 0.0
