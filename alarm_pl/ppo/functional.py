"""The PPO maths as pure tensor functions: masked statistics, whitening, GAE, the clipped losses, KL estimates.

Conventions (DESIGN.md): per-token tensors are (B, T), right-padded; ``mask`` is bool or 0/1 with ``True`` on real
tokens. Every function reads ``x`` only where ``mask`` is True (padding may hold garbage, even inf/NaN, and never
reaches a result or a gradient) and every per-token output is exactly 0 on padding.

References:
    PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7 (clipped surrogate).
    GAE: Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage Estimation",
    eq. 11-16. KL estimators k1/k3: J. Schulman, "Approximating KL Divergence" (2020).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor

Reduce = Callable[[Tensor], Tensor]


class PolicyLossStats(NamedTuple):
    """Diagnostics of ``policy_loss``; every field is a detached 0-dim tensor.

    Attributes:
        approx_kl: mean over real tokens of 0.5 * (log π - log π_old)^2 (the "k2" estimator of KL(π_old || π):
            always >= 0 and second-order accurate, so early stopping never fires on a negative estimate).
        clipfrac: share of real tokens whose clipped term is the active (larger) one of the two.
        ratio_mean: mean over real tokens of the probability ratio π / π_old.
        policy_kl: mean over real tokens of log π_old - log π (the "k1" estimator of KL(π_old || π), may be negative):
            trl 0.5's ``policy/policykl``, the quantity of its early stop (``PPOTrainer.loss`` / ``_early_stop``).
    """

    approx_kl: Tensor
    clipfrac: Tensor
    ratio_mean: Tensor
    policy_kl: Tensor


class ValueLossStats(NamedTuple):
    """Diagnostics of ``value_loss``.

    Attributes:
        vf_clipfrac: detached 0-dim share of real tokens whose clipped squared error is the active one.
    """

    vf_clipfrac: Tensor


def _stat_dtype(x: Tensor) -> torch.dtype:
    """At least float32, so that statistics of half-precision tensors are accurate."""
    return torch.promote_types(x.dtype, torch.float32)


def masked_sum(x: Tensor, mask: Tensor, dim: Optional[int] = None) -> Tensor:
    """Sum of ``x`` over its real entries.

    Args:
        x: (B, T) values.
        mask: (B, T) bool or 0/1, True on real tokens.
        dim: dimension to reduce; ``None`` sums everything.

    Returns:
        0-dim tensor if ``dim`` is None, else ``x`` reduced along ``dim`` (e.g. (B,) for ``dim=1``).
    """
    kept = torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))  # (B, T)
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: Optional[int] = None) -> Tensor:
    """Mean of ``x`` over its real entries; 0 where there are none (an empty row, an empty batch).

    Args:
        x: (B, T) values.
        mask: (B, T) bool or 0/1, True on real tokens.
        dim: dimension to reduce; ``None`` averages over all real entries.

    Returns:
        0-dim tensor if ``dim`` is None, else ``x`` reduced along ``dim``.
    """
    count = mask.bool().sum() if dim is None else mask.bool().sum(dim=dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1)


def _moments(x: Tensor, mask: Tensor, unbiased: bool, reduce: Optional[Reduce]) -> tuple[Tensor, Tensor]:
    """Mean and variance of the real entries of ``x`` (two passes, optionally summed across processes).

    Returns:
        (mean, var), two 0-dim tensors of at least float32. The variance is 0 with fewer than two real entries
        (or none, when ``unbiased`` is False).
    """
    xs = x.to(_stat_dtype(x))  # (B, T)
    total_count = torch.stack([masked_sum(xs, mask), mask.bool().sum().to(xs.dtype)])  # (2,)
    if reduce is not None:
        total_count = reduce(total_count)
    total, count = total_count[0], total_count[1]
    mean = total / count.clamp_min(1)
    squares = masked_sum((xs - mean) ** 2, mask)  # centred second pass: no catastrophic cancellation
    if reduce is not None:
        squares = reduce(squares)
    return mean, squares / (count - 1 if unbiased else count).clamp_min(1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of the real entries of ``x``.

    Args:
        x: (B, T) values.
        mask: (B, T) bool or 0/1, True on real tokens.
        unbiased: divide by n - 1 (Bessel's correction) instead of n.

    Returns:
        0-dim tensor (at least float32); 0 when there are too few real entries to measure a spread.
    """
    return _moments(x, mask, unbiased, reduce=None)[1]


def masked_whiten(
    x: Tensor, mask: Tensor, shift_mean: bool = True, reduce: Optional[Reduce] = None, *, eps: float = 1e-8
) -> Tensor:
    """Whiten ``x`` with the mean and (unbiased) variance of its real entries.

    Args:
        x: (B, T) values (e.g. GAE advantages).
        mask: (B, T) bool or 0/1, True on real tokens.
        shift_mean: if False, add the mean back: only the scale is normalised.
        reduce: optional callable summing a tensor across processes (e.g.
            ``lambda t: strategy.reduce(t, reduce_op="sum")``); when given, the sum, the count and the centred sum
            of squares are global, so every rank whitens with the same statistics.
        eps: added to the variance before the square root.

    Returns:
        (B, T) whitened values in ``x``'s dtype, exactly 0 on padding.
    """
    mean, var = _moments(x, mask, unbiased=True, reduce=reduce)
    whitened = (x.to(mean.dtype) - mean) * torch.rsqrt(var + eps)  # (B, T)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened)).to(x.dtype)


def masked_center(x: Tensor, mask: Tensor, reduce: Optional[Reduce] = None) -> Tensor:
    """``x`` minus the mean of its real entries; the scale is kept.

    Args:
        x: (B, T) values (e.g. GAE advantages).
        mask: (B, T) bool or 0/1, True on real tokens.
        reduce: optional callable summing a tensor across processes (see ``masked_whiten``).

    Returns:
        (B, T) centred values in ``x``'s dtype, exactly 0 on padding.
    """
    mean, _ = _moments(x, mask, unbiased=True, reduce=reduce)
    centred = x.to(mean.dtype) - mean  # (B, T)
    return torch.where(mask.bool(), centred, torch.zeros_like(centred)).to(x.dtype)


def compute_gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over each response's own real tokens (GAE eq. 11-16).

    δ_t = r_t + γ V_{t+1} - V_t and A_t = δ_t + γλ A_{t+1} (eq. 16), where V and A after a row's last real token
    are 0: the episode ends at the response's own last token, whatever the padding after it.

    Args:
        rewards: (B, T) per-token rewards.
        values: (B, T) value estimates V(s_t).
        mask: (B, T) bool or 0/1, True on real tokens (right-padded).
        gamma: discount γ.
        lam: GAE λ.

    Returns:
        (advantages, returns), both (B, T) and exactly 0 on padding; returns = advantages + values (the λ-return,
        the value target).
    """
    mask = mask.bool()
    zero = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    rewards = torch.where(mask, rewards, zero)  # (B, T)
    values = torch.where(mask, values.to(rewards.dtype), zero)  # (B, T)
    next_value = torch.zeros_like(rewards[:, 0])  # (B,) V after the last position
    next_advantage = torch.zeros_like(rewards[:, 0])  # (B,)
    reversed_advantages = []
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,) eq. 12
        advantage = torch.where(mask[:, t], delta + gamma * lam * next_advantage, zero)  # (B,) eq. 16
        reversed_advantages.append(advantage)
        next_value, next_advantage = values[:, t], advantage  # both 0 past the row's last real token
    advantages = torch.stack(reversed_advantages[::-1], dim=1)  # (B, T)
    returns = torch.where(mask, advantages + values, zero)  # (B, T)
    return advantages, returns


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_range: float
) -> tuple[Tensor, PolicyLossStats]:
    """PPO clipped surrogate (PPO eq. 7), negated for minimisation, averaged over real tokens.

    L = mean_t max(-A_t ρ_t, -A_t clip(ρ_t, 1 - ε, 1 + ε)) with ρ_t = π(y_t) / π_old(y_t).

    Args:
        logprobs: (B, T) log π(y_t) under the current policy (carries the gradient).
        old_logprobs: (B, T) log π_old(y_t) from the rollout.
        advantages: (B, T) advantage estimates (typically whitened).
        mask: (B, T) bool or 0/1, True on real tokens.
        clip_range: ε.

    Returns:
        (loss, stats): 0-dim loss and ``PolicyLossStats``.
    """
    mask = mask.bool()
    log_ratio = torch.where(mask, logprobs - old_logprobs, torch.zeros_like(logprobs))  # (B, T) no exp of garbage
    ratio = torch.exp(log_ratio)  # (B, T)
    unclipped = -advantages * ratio  # (B, T)
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)  # (B, T)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = PolicyLossStats(
            approx_kl=masked_mean(0.5 * log_ratio**2, mask),
            clipfrac=masked_mean((clipped > unclipped).float(), mask),
            ratio_mean=masked_mean(ratio, mask),
            policy_kl=masked_mean(-log_ratio, mask),
        )
    return loss, stats


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: Optional[float]
) -> tuple[Tensor, ValueLossStats]:
    """Clipped value loss 0.5 * max((V - R)^2, (clip(V, V_old - ε, V_old + ε) - R)^2), averaged over real tokens.

    The clip keeps V within ε of V_old per rollout *in reward units*: with returns of several units (e.g. w_h · H
    with w_h = 3 on z-normalised H) an ε of 0.2 lets the critic climb only 0.2 per rollout, so ``None`` (no clip,
    0.5 * (V - R)^2) is offered.

    Args:
        values: (B, T) current value estimates (carries the gradient).
        old_values: (B, T) value estimates from the rollout.
        returns: (B, T) value targets (GAE returns).
        mask: (B, T) bool or 0/1, True on real tokens.
        clip_range: ε, the largest move of V away from V_old that still earns a gradient; ``None``: no clip.

    Returns:
        (loss, stats): 0-dim loss and ``ValueLossStats``.
    """
    mask = mask.bool()
    # Zero the padding first so that garbage there cannot turn into NaN gradients through the squares.
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    values, old_values, returns = (torch.where(mask, t, zero) for t in (values, old_values, returns))  # (B, T) each
    unclipped_error = (values - returns) ** 2  # (B, T)
    if clip_range is None:
        return 0.5 * masked_mean(unclipped_error, mask), ValueLossStats(
            vf_clipfrac=torch.zeros((), device=values.device)
        )
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)  # (B, T)
    clipped_error = (clipped_values - returns) ** 2  # (B, T)
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    with torch.no_grad():
        stats = ValueLossStats(vf_clipfrac=masked_mean((clipped_error > unclipped_error).float(), mask))
    return loss, stats


def _k1(log_ratio: Tensor) -> Tensor:
    """k1 = log π - log π_ref: unbiased for KL(π || π_ref) under samples of π, per token possibly negative."""
    return log_ratio


def _k3(log_ratio: Tensor) -> Tensor:
    """k3 = (r - 1) - log r with r = π_ref / π: unbiased and never negative."""
    return torch.expm1(-log_ratio) + log_ratio


_KL_ESTIMATORS: dict[str, Callable[[Tensor], Tensor]] = {"k1": _k1, "k3": _k3}


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k1") -> Tensor:
    """Per-token estimate of KL(π || π_ref) from the log-probs of tokens sampled from π.

    Args:
        logprobs: (B, T) log π(y_t).
        ref_logprobs: (B, T) log π_ref(y_t).
        estimator: ``k1`` (log π - log π_ref) or ``k3`` (exp(ref - logp) - 1 - (ref - logp)).

    Returns:
        (B, T) per-token estimate (not masked: padding holds whatever the inputs give).

    Raises:
        ValueError: for an unknown estimator.
    """
    if estimator not in _KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {sorted(_KL_ESTIMATORS)}")
    return _KL_ESTIMATORS[estimator](logprobs - ref_logprobs)


def kl_penalized_rewards(
    rewards: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, beta: float, estimator: str = "k1"
) -> Tensor:
    """Per-token reward minus the KL penalty, r_t - β KL_t (Ziegler et al. 2019).

    Args:
        rewards: (B, T) composed per-token rewards.
        logprobs: (B, T) log π_old(y_t) of the sampled tokens.
        ref_logprobs: (B, T) log π_ref(y_t).
        mask: (B, T) bool or 0/1, True on real tokens.
        beta: KL coefficient β (the KL controller's value).
        estimator: see ``kl_estimate``.

    Returns:
        (B, T) penalised rewards, exactly 0 on padding.
    """
    penalised = rewards - beta * kl_estimate(logprobs, ref_logprobs, estimator)  # (B, T)
    return torch.where(mask.bool(), penalised, torch.zeros_like(penalised))


def logprobs_from_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """log softmax(logits)[label] without materialising a full log-softmax copy.

    Computes logit[label] - logsumexp(logits). Half-precision logits are processed one row at a time in float32
    (accuracy at bounded extra memory).

    Args:
        logits: (B, T, V) unnormalised scores.
        labels: (B, T) long token ids; every entry must be a valid index (put any id on padding and mask the result).

    Returns:
        (B, T) log-probabilities, float32 (or float64 for float64 logits).
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        return torch.stack([logprobs_from_logits(row.float(), row_labels) for row, row_labels in zip(logits, labels)])
    picked = torch.gather(logits, dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of softmax(logits) along the last dimension: H = logsumexp(z) - Σ_v p_v z_v.

    Args:
        logits: (..., V) finite unnormalised scores.

    Returns:
        (...) entropy per position, at least float32.
    """
    logits = logits.to(_stat_dtype(logits))
    probs = torch.softmax(logits, dim=-1)  # (..., V)
    return torch.logsumexp(logits, dim=-1) - torch.einsum("...v,...v->...", probs, logits)  # (...)


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """1 - Var[R - V] / Var[R] over real tokens: 1 is a perfect critic, 0 no better than a constant.

    Args:
        values: (B, T) value estimates.
        returns: (B, T) value targets.
        mask: (B, T) bool or 0/1, True on real tokens.

    Returns:
        0-dim tensor; NaN when the returns do not vary (the ratio is undefined).
    """
    var_returns = masked_var(returns, mask)
    var_residual = masked_var(returns - values, mask)
    nan = torch.full_like(var_returns, float("nan"))
    return torch.where(var_returns > 0, 1.0 - var_residual / var_returns, nan)
