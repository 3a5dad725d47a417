"""Hand-computed checks of the PPO maths in ``alarm_pl.ppo.functional`` on tiny right-padded batches."""

import math
import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alarm_pl.ppo import functional as F

GARBAGE = 1e4  # values put on padding positions: they must never reach a result


def _batch(rows: list[list[float]], width: int, pad: float = GARBAGE) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``rows`` to ``width`` with ``pad``; returns (values (B, T) float64, mask (B, T) bool)."""
    values = torch.full((len(rows), width), pad, dtype=torch.float64)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        values[i, : len(row)] = torch.tensor(row, dtype=torch.float64)
        mask[i, : len(row)] = True
    return values, mask


# ---------------------------------------------------------------------------------------------- masked statistics
def test_masked_sum_mean_ignore_padding_and_empty_rows():
    x, mask = _batch([[1.0, 2.0, 3.0], [4.0], []], width=3)
    assert F.masked_sum(x, mask).item() == 10.0  # 1+2+3+4
    assert F.masked_mean(x, mask).item() == 2.5  # 10 / 4
    assert F.masked_mean(x, mask, dim=1).tolist() == [2.0, 4.0, 0.0]  # 6/3, 4/1, empty row -> 0
    assert F.masked_sum(x, mask.long(), dim=1).tolist() == [6.0, 4.0, 0.0]  # a 0/1 mask works too


def test_masked_var_unbiased_and_biased():
    x, mask = _batch([[1.0, 2.0, 3.0], [4.0]], width=3)
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5
    assert F.masked_var(x, mask).item() == pytest.approx(5 / 3)
    assert F.masked_var(x, mask, unbiased=False).item() == pytest.approx(5 / 4)
    one, one_mask = _batch([[7.0]], width=2)
    assert F.masked_var(one, one_mask).item() == 0.0  # a single entry has no spread


# ---------------------------------------------------------------------------------------------------- whitening
def test_masked_whiten_uses_only_real_tokens_and_zeroes_padding():
    x, mask = _batch([[1.0, 2.0, 3.0], [4.0]], width=3)
    out = F.masked_whiten(x, mask)
    std = math.sqrt(5 / 3)  # unbiased variance 5/3 (see above)
    expected = torch.tensor([[-1.5 / std, -0.5 / std, 0.5 / std], [1.5 / std, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    assert out[~mask].eq(0).all()  # exactly 0, not merely close


def test_masked_whiten_without_mean_shift_adds_the_mean_back():
    x, mask = _batch([[1.0, 2.0, 3.0], [4.0]], width=3)
    out = F.masked_whiten(x, mask, shift_mean=False)
    std = math.sqrt(5 / 3)
    # (x - 2.5) / std + 2.5 on real tokens
    expected = torch.tensor([[2.5 - 1.5 / std, 2.5 - 0.5 / std, 2.5 + 0.5 / std], [2.5 + 1.5 / std, 0, 0]])
    torch.testing.assert_close(out, expected.double())
    assert out[~mask].eq(0).all()


def test_masked_center_subtracts_the_real_mean_and_keeps_the_scale():
    x = torch.tensor([[1.0, 2.0, 9.0], [3.0, float("nan"), 7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # real entries 1, 2, 3: mean 2 -> -1, 0, 1; padding (9, nan, 7) ignored and 0
    assert torch.equal(F.masked_center(x, mask), torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    # a constant batch stays 0, where whitening would divide 0 by sqrt(eps)
    assert torch.equal(F.masked_center(torch.full((2, 2), 4.0), torch.ones(2, 2)), torch.zeros(2, 2))


def test_masked_whiten_keeps_dtype_of_half_precision_input():
    x, mask = _batch([[1.0, 2.0, 3.0], [4.0]], width=3)
    out = F.masked_whiten(x.to(torch.bfloat16), mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), F.masked_whiten(x, mask), atol=1e-2, rtol=1e-2)


class _FakeAllReduce:
    """An in-process all-reduce (sum) for ``world`` threads standing in for ranks."""

    def __init__(self, world: int) -> None:
        self.barrier = threading.Barrier(world)
        self.slots: list = [None] * world
        self.calls = 0

    def for_rank(self, rank: int):
        def reduce(t: torch.Tensor) -> torch.Tensor:
            self.slots[rank] = t.clone()
            self.barrier.wait()
            total = sum(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before everyone has summed
            if rank == 0:
                self.calls += 1
            return total

        return reduce


def test_masked_whiten_reduce_matches_whitening_the_concatenated_data():
    # rank 0 holds rows of lengths 3 and 1, rank 1 rows of lengths 2 and 4 (other width, other padding).
    x0, m0 = _batch([[1.0, 2.0, 3.0], [4.0]], width=3)
    x1, m1 = _batch([[-2.0, 10.0], [0.5, 6.0, 7.0, 8.0]], width=4, pad=-GARBAGE)
    x_all, m_all = _batch([[1.0, 2.0, 3.0], [4.0], [-2.0, 10.0], [0.5, 6.0, 7.0, 8.0]], width=4)
    expected = F.masked_whiten(x_all, m_all, shift_mean=False)
    fake = _FakeAllReduce(world=2)
    results: dict = {}

    def run(rank, x, m):
        results[rank] = F.masked_whiten(x, m, shift_mean=False, reduce=fake.for_rank(rank))

    threads = [threading.Thread(target=run, args=a) for a in ((0, x0, m0), (1, x1, m1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert fake.calls >= 1
    torch.testing.assert_close(results[0], expected[:2, :3])
    torch.testing.assert_close(results[1], expected[2:, :4])
    # and the local statistics differ: without reduce, rank 0 would whiten differently
    assert not torch.allclose(F.masked_whiten(x0, m0, shift_mean=False), expected[:2, :3])


# ------------------------------------------------------------------------------------------------------------ GAE
def _gae_batch():
    # row 0: 3 real tokens; row 1: 1 real token, then garbage on padding
    rewards, mask = _batch([[1.0, 0.0, 2.0], [3.0]], width=3)
    values, _ = _batch([[0.5, 1.0, 1.5], [2.0]], width=3, pad=-GARBAGE)
    return rewards, values, mask


def test_gae_gamma_1_lambda_095_mixed_lengths():
    rewards, values, mask = _gae_batch()
    adv, ret = F.compute_gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # row 0, backwards (V after the last real token is 0):
    #   t=2: δ = 2 + 0 - 1.5 = 0.5;          A = 0.5
    #   t=1: δ = 0 + 1.5 - 1.0 = 0.5;        A = 0.5 + 0.95*0.5 = 0.975
    #   t=0: δ = 1 + 1.0 - 0.5 = 1.5;        A = 1.5 + 0.95*0.975 = 2.42625
    # row 1: t=0: δ = 3 + 0 - 2 = 1;         A = 1 (padding ignored)
    # returns = A + V: [2.92625, 1.975, 2.0], [3.0]
    torch.testing.assert_close(adv, torch.tensor([[2.42625, 0.975, 0.5], [1.0, 0, 0]], dtype=torch.float64))
    torch.testing.assert_close(ret, torch.tensor([[2.92625, 1.975, 2.0], [3.0, 0, 0]], dtype=torch.float64))
    assert adv[~mask].eq(0).all() and ret[~mask].eq(0).all()


def test_gae_gamma_09_lambda_1_is_discounted_reward_to_go():
    rewards, values, mask = _gae_batch()
    adv, ret = F.compute_gae(rewards, values, mask, gamma=0.9, lam=1.0)
    # row 0: t=2: δ = 2 - 1.5 = 0.5;             A = 0.5
    #        t=1: δ = 0 + 0.9*1.5 - 1 = 0.35;    A = 0.35 + 0.9*0.5 = 0.8
    #        t=0: δ = 1 + 0.9*1.0 - 0.5 = 1.4;   A = 1.4 + 0.9*0.8 = 2.12
    # returns: 2 ; 0 + 0.9*2 = 1.8 ; 1 + 0.9*1.8 = 2.62 (λ=1: the discounted reward-to-go)
    torch.testing.assert_close(adv, torch.tensor([[2.12, 0.8, 0.5], [1.0, 0, 0]], dtype=torch.float64))
    torch.testing.assert_close(ret, torch.tensor([[2.62, 1.8, 2.0], [3.0, 0, 0]], dtype=torch.float64))


def test_gae_empty_row_is_all_zero():
    rewards, mask = _batch([[1.0, 1.0], []], width=2)
    values, _ = _batch([[0.0, 0.0], []], width=2)
    adv, ret = F.compute_gae(rewards, values, mask, gamma=1.0, lam=0.95)
    assert adv[1].eq(0).all() and ret[1].eq(0).all()
    # row 0 with V = 0: A_1 = 1 ; A_0 = 1 + 0.95*1 = 1.95 ; returns = A
    torch.testing.assert_close(ret[0], torch.tensor([1.95, 1.0], dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.lists(st.floats(-5, 5, allow_nan=False), min_size=0, max_size=6), min_size=1, max_size=4),
    value=st.floats(-3, 3, allow_nan=False),
)
def test_gae_lambda_1_gamma_1_returns_are_reverse_cumsum(rows, value):
    rewards, mask = _batch(rows, width=6)
    values = torch.where(mask, torch.full_like(rewards, value), torch.full_like(rewards, GARBAGE))
    adv, ret = F.compute_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    for i, row in enumerate(rows):
        to_go = [sum(row[t:]) for t in range(len(row))]
        torch.testing.assert_close(ret[i, : len(row)], torch.tensor(to_go, dtype=torch.float64))
        torch.testing.assert_close(adv[i, : len(row)], torch.tensor(to_go, dtype=torch.float64) - value)
    assert ret[~mask].eq(0).all() and adv[~mask].eq(0).all()


# --------------------------------------------------------------------------------------------------- policy loss
def _policy_case():
    # four real tokens, clip ε = 0.2:
    #   a) ρ=1.5, A=+1: max(-1.5, -1.2) = -1.2  clipped term active
    #   b) ρ=1.5, A=-1: max( 1.5,  1.2) =  1.5  unclipped
    #   c) ρ=0.5, A=+1: max(-0.5, -0.8) = -0.5  unclipped
    #   d) ρ=0.5, A=-1: max( 0.5,  0.8) =  0.8  clipped term active
    ln15, ln05 = math.log(1.5), math.log(0.5)
    logp, mask = _batch([[ln15, ln15, ln05], [ln05]], width=3, pad=50.0)  # exp(50 - garbage) must not leak
    old, _ = _batch([[0.0, 0.0, 0.0], [0.0]], width=3, pad=-GARBAGE)
    adv, _ = _batch([[1.0, -1.0, 1.0], [-1.0]], width=3, pad=float("inf"))
    return logp.requires_grad_(), old, adv, mask


def test_policy_loss_clipping_cases_and_stats():
    logp, old, adv, mask = _policy_case()
    loss, stats = F.policy_loss(logp, old, adv, mask, clip_range=0.2)
    assert loss.item() == pytest.approx((-1.2 + 1.5 - 0.5 + 0.8) / 4)  # 0.15
    assert stats.clipfrac.item() == pytest.approx(0.5)  # a) and d)
    assert stats.ratio_mean.item() == pytest.approx(1.0)  # (1.5 + 1.5 + 0.5 + 0.5) / 4
    # approx_kl = mean of 0.5*(log ρ)^2 = 0.5 * (2 ln²1.5 + 2 ln²0.5) / 4 ≈ 0.16121
    assert stats.approx_kl.item() == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 2)
    assert not stats.approx_kl.requires_grad
    # policy_kl (trl's policykl, k1) = mean(log π_old − log π) = −(2 ln 1.5 + 2 ln 0.5) / 4 = −ln(0.75) / 2 ≈ 0.1438
    assert stats.policy_kl.item() == pytest.approx(-math.log(0.75) / 2)


def test_policy_loss_on_policy_nothing_is_clipped():
    # ρ = 1 everywhere (inside the clip, both terms equal): loss = mean(-A) = -(2 - 1 + 0.5) / 3 = -0.5
    logp, mask = _batch([[-1.0, -2.0], [-0.5]], width=2)
    adv, _ = _batch([[2.0, -1.0], [0.5]], width=2)
    loss, stats = F.policy_loss(logp, logp.clone(), adv, mask, clip_range=0.2)
    assert loss.item() == pytest.approx(-0.5)
    assert stats.clipfrac.item() == 0.0 and stats.approx_kl.item() == 0.0 and stats.ratio_mean.item() == 1.0


def test_policy_loss_gradient_only_through_unclipped_real_tokens():
    logp, old, adv, mask = _policy_case()
    loss, _ = F.policy_loss(logp, old, adv, mask, clip_range=0.2)
    loss.backward()
    # d/dlogp of -A ρ / 4 = -A ρ / 4: b) -(-1)(1.5)/4 = 0.375, c) -(1)(0.5)/4 = -0.125; clipped and padding 0
    expected = torch.tensor([[0.0, 0.375, -0.125], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(logp.grad, expected)


# ---------------------------------------------------------------------------------------------------- value loss
def test_value_loss_clipping_cases():
    # V_old = 1 everywhere, ε = 0.2:
    #   a) V=1.5, R=2: (0.5)^2=0.25 vs (1.2-2)^2=0.64 -> 0.64 (clipped active)
    #   b) V=1.5, R=1: 0.25 vs (1.2-1)^2=0.04         -> 0.25
    #   c) V=0.5, R=0: 0.25 vs (0.8-0)^2=0.64         -> 0.64 (clipped active)
    #   d) V=1.1, R=3: 3.61 vs 3.61 (inside the clip)  -> 3.61
    values, mask = _batch([[1.5, 1.5], [0.5, 1.1]], width=3, pad=float("inf"))
    values.requires_grad_()
    old, _ = _batch([[1.0, 1.0], [1.0, 1.0]], width=3, pad=-GARBAGE)
    returns, _ = _batch([[2.0, 1.0], [0.0, 3.0]], width=3, pad=float("nan"))
    loss, stats = F.value_loss(values, old, returns, mask, clip_range=0.2)
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.25 + 0.64 + 3.61) / 4)  # 0.6425
    assert stats.vf_clipfrac.item() == pytest.approx(0.5)
    loss.backward()
    # only b) and d) pass a gradient: 0.5 * 2(V-R) / 4 -> b) 0.5/4 = 0.125, d) -1.9/4 = -0.475
    expected = torch.tensor([[0.0, 0.125, 0.0], [0.0, -0.475, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(values.grad, expected)


# ------------------------------------------------------------------------------------------------------------ KL
def test_kl_estimators_k1_k3():
    logp = torch.log(torch.tensor([[0.5, 0.25]], dtype=torch.float64))
    ref = torch.log(torch.tensor([[0.25, 0.5]], dtype=torch.float64))
    # k1 = log(0.5/0.25) = ln 2, log(0.25/0.5) = -ln 2
    torch.testing.assert_close(F.kl_estimate(logp, ref, "k1"), torch.tensor([[math.log(2), -math.log(2)]]).double())
    # k3 = e^(ref-logp) - 1 - (ref-logp): 0.5 - 1 + ln2 = 0.19315 ; 2 - 1 - ln2 = 0.30685
    k3 = torch.tensor([[0.5 - 1 + math.log(2), 2 - 1 - math.log(2)]], dtype=torch.float64)
    torch.testing.assert_close(F.kl_estimate(logp, ref, "k3"), k3)
    assert F.kl_estimate(logp, logp, "k3").eq(0).all()


def test_kl_estimate_unknown_name_raises():
    with pytest.raises(ValueError, match="'k2'"):
        F.kl_estimate(torch.zeros(1, 1), torch.zeros(1, 1), "k2")


def test_kl_penalized_rewards_zero_on_padding():
    rewards, mask = _batch([[0.0, 0.0, 1.0], [2.0]], width=3)
    logp, _ = _batch([[0.1, -0.2, 0.3], [0.5]], width=3)
    ref = torch.zeros_like(logp)
    out = F.kl_penalized_rewards(rewards, logp, ref, mask, beta=0.1)
    # r - 0.1 * k1: [0 - 0.01, 0 + 0.02, 1 - 0.03], [2 - 0.05]
    torch.testing.assert_close(out, torch.tensor([[-0.01, 0.02, 0.97], [1.95, 0, 0]], dtype=torch.float64))
    assert out[~mask].eq(0).all()


# ------------------------------------------------------------------------------------------------ logits helpers
def test_logprobs_from_logits_matches_hand_values_and_half_precision():
    logits = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]])  # (1, 2, 3)
    labels = torch.tensor([[1, 2]])
    # uniform over 3: -ln 3 ; 3 - logsumexp(1,2,3) = -ln(1 + e^-1 + e^-2) = -ln 1.503214 = -0.407606
    expected = torch.tensor([[-math.log(3), -math.log(1 + math.exp(-1) + math.exp(-2))]])
    torch.testing.assert_close(F.logprobs_from_logits(logits, labels), expected)
    half = F.logprobs_from_logits(logits.to(torch.bfloat16), labels)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, expected, atol=1e-2, rtol=1e-2)


def test_entropy_from_logits():
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3)]]])  # p = (1/2, 1/2), (1/4, 3/4)
    # ln 2 ; -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.346574 + 0.215762 = 0.562335
    expected = torch.tensor([[math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]])
    torch.testing.assert_close(F.entropy_from_logits(logits), expected)


# ------------------------------------------------------------------------------------------- explained variance
def test_explained_variance():
    returns, mask = _batch([[1.0, 2.0, 3.0], [4.0]], width=3)
    values, _ = _batch([[1.0, 2.0, 2.0], [3.0]], width=3, pad=-GARBAGE)
    # R - V = 0, 0, 1, 1: mean 0.5, Var = 4*0.25/3 = 1/3 ; Var[R] = 5/3 -> 1 - (1/3)/(5/3) = 0.8
    assert F.explained_variance(values, returns, mask).item() == pytest.approx(0.8)
    assert F.explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    constant, _ = _batch([[2.0, 2.0, 2.0], [2.0]], width=3)
    assert math.isnan(F.explained_variance(values, constant, mask).item())  # Var[R] = 0: undefined
