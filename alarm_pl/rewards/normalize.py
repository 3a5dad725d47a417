"""Normalisation and shaping of reward values (PAPER.md §1 step 2 and §2).

Normalisers are ``torch.nn.Module``s so that their state (fixed constants, running statistics) lives in buffers and
goes into checkpoints. They act on *oriented* values (higher is better), the values a scorer places on tokens.

Pipeline of one aspect (``shape_aspect``): placed values a → normaliser (z-score) → shaping σ(scale·z + bias)
→ × weight w_k;  exactly 0 off the placed positions. The holistic reward (``normalize_holistic``) is normalised and
never shaped: H = (H_raw − μ) / σ.

Every normalisation constant must carry its provenance: ``python -m alarm_pl.calibrate`` (``alarm_pl/calibrate.py``)
measures values on a policy and prints the YAML of a ``FixedNormalizer`` preceded by a comment saying how many
values, which command, which data and when.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from alarm_pl.rewards.base import Normalizer, Score, Shaping  # noqa: F401 (Normalizer re-exported)

if TYPE_CHECKING:
    from alarm_pl.rewards.base import Scorer


class FixedNormalizer(Normalizer):
    """z = scale · (x − mean) / std + bias with constants measured once (e.g. UltraRM on the SFT policy's outputs).

    ``scale`` and ``bias`` rescale the z-score before shaping, as FineGrainedRLHF does for its completeness reward
    (``((r - mean) / std) * scale + bias``, ``PreferenceReward.get_reward`` in ``tasks/qa_feedback/training/reward.py``
    and ALaRM's ``long-form-QA/my_reward.py``; there scale 0.3, bias 0).

    Args:
        mean: μ, the mean of the values on the calibration data (cite the tool and data in a YAML comment; see
            ``alarm_pl.calibrate``).
        std: σ > 0, their standard deviation.
        scale: factor on the z-score (1: plain z-normalisation).
        bias: added after scaling.
    """

    def __init__(self, mean: float, std: float, scale: float = 1.0, bias: float = 0.0) -> None:
        super().__init__()
        if not (math.isfinite(std) and std > 0) or not all(map(math.isfinite, (mean, scale, bias))):
            raise ValueError(
                f"FixedNormalizer: need finite mean, scale, bias and std > 0, got mean={mean}, "
                f"std={std}, scale={scale}, bias={bias}"
            )
        self.register_buffer("mean", torch.tensor(float(mean), dtype=torch.float64))
        self.register_buffer("std", torch.tensor(float(std), dtype=torch.float64))
        self.scale, self.bias = float(scale), float(bias)

    def forward(self, x: Tensor) -> Tensor:
        return (self.scale * (x - self.mean) / self.std + self.bias).to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={self.mean.item():.6g}, std={self.std.item():.6g}, scale={self.scale:g}, bias={self.bias:g}"


class RunningNormalizer(Normalizer):
    """z = (x − mean) / sqrt(var + eps) with the mean and (population) variance of every value seen so far.

    Statistics are merged batch by batch with Chan et al.'s parallel formula from the buffers ``count``, ``mean``
    and ``m2`` (sum of squared deviations), in float64. Under ``torch.distributed`` the batch statistics are summed
    over all ranks first, so every rank holds identical state.

    Args:
        eps: added to the variance before the square root.
        clip: when set, normalised values are clamped to [−clip, clip].
        min_count: until this many values have been seen, ``forward`` returns its input unchanged (a variance from
            fewer values is meaningless).
    """

    def __init__(self, eps: float = 1e-6, clip: Optional[float] = None, min_count: int = 2) -> None:
        super().__init__()
        if eps < 0 or (clip is not None and clip <= 0) or min_count < 1:
            raise ValueError(
                f"RunningNormalizer: need eps >= 0, clip > 0 or None, min_count >= 1; "
                f"got eps={eps}, clip={clip}, min_count={min_count}"
            )
        self.eps, self.clip, self.min_count = float(eps), clip, int(min_count)
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("m2", torch.zeros((), dtype=torch.float64))

    @property
    def var(self) -> Tensor:
        """() population variance of the values seen so far (0 before any)."""
        return self.m2 / self.count.clamp(min=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.count < self.min_count:
            return x
        z = (x - self.mean) / torch.sqrt(self.var + self.eps)
        if self.clip is not None:
            z = z.clamp(-self.clip, self.clip)
        return z.to(x.dtype)

    def update(self, x: Tensor) -> None:
        """Merge the statistics of ``x`` (all elements; summed across ranks when distributed)."""
        n, mean, m2 = (t.to(self.count.device) for t in _global_moments(x.detach().flatten().double()))
        if n == 0:
            return
        total = self.count + n
        delta = mean - self.mean
        self.m2 += m2 + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count.copy_(total)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, clip={self.clip}, min_count={self.min_count}"


def _global_moments(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Count, mean and sum of squared deviations of ``x`` (1-D float64) over all ranks.

    Two all-reduces (count and sum, then squared deviations from the global mean) keep the variance exact without
    the cancellation of a sum-of-squares formula. Every rank must call this, even with an empty ``x``.
    """
    stats = torch.stack([x.new_tensor(float(x.numel())), x.sum()])  # (2,) count, sum
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.all_reduce(stats)
    n = stats[0]
    mean = stats[1] / n.clamp(min=1)
    m2 = ((x - mean) ** 2).sum()
    if distributed:
        dist.all_reduce(m2)
    return n.cpu(), mean.cpu(), m2.cpu()


def shape_values(
    values: Tensor, placed: Tensor, shaping: Shaping = "sigmoid", scale: float = 1.0, bias: float = 0.0
) -> Tensor:
    """Shape placed values: σ(scale·x + bias) for ``sigmoid``, scale·x + bias for ``identity``; 0 elsewhere.

    Args:
        values: (B, T) normalised values.
        placed: (B, T) bool positions that carry a value.
        shaping: ``sigmoid`` (positive bonuses, PAPER.md §1 step 2) or ``identity``.
        scale, bias: affine map applied before the shaping function.

    Returns:
        (B, T) shaped values, exactly 0 where ``placed`` is False.
    """
    z = scale * values + bias  # (B, T)
    if shaping == "sigmoid":
        z = torch.sigmoid(z)
    elif shaping != "identity":
        raise ValueError(f"shape_values: shaping must be 'sigmoid' or 'identity', got {shaping!r}")
    return torch.where(placed.bool(), z, torch.zeros_like(z))  # (B, T)


def shape_aspect(score: Score, scorer: "Scorer", update: bool = True) -> Tensor:
    """The per-token reward of one aspect: w_k · shape(normalise(a_k)) on its placed tokens.

    Args:
        score: the scorer's output (values and placed (B, T)).
        scorer: supplies ``normalizer`` (optional), ``shaping`` and ``weight``.
        update: feed the placed values to the normaliser before normalising (training); False for evaluation.

    Returns:
        (B, T) float reward, exactly 0 off ``score.placed``.
    """
    placed = score.placed.bool()  # (B, T)
    values = score.values  # (B, T)
    if scorer.normalizer is not None:
        if update:
            scorer.normalizer.update(values[placed])
        values = scorer.normalizer(values)  # (B, T)
    return scorer.weight * shape_values(values, placed, scorer.shaping)  # (B, T)


def normalize_holistic(score: Score, normalizer: Optional[Normalizer], update: bool = True) -> Tensor:
    """H = normalizer(H_raw) with H_raw = ``score.oriented_metric``; never shaped.

    Args:
        score: the holistic scorer's output; its metric (B,) is the raw reward.
        normalizer: e.g. ``FixedNormalizer(mean=-2.344, std=2.946)`` for UltraRM on MT (PAPER.md §2); None keeps
            the raw reward.
        update: feed the raw rewards to the normaliser first (matters for a running normaliser only).

    Returns:
        (B,) float normalised holistic reward.
    """
    raw = score.oriented_metric.float()  # (B,)
    if normalizer is None:
        return raw
    if update:
        normalizer.update(raw[torch.isfinite(raw)])  # a dropped (NaN) sample never reaches the statistics
    return normalizer(raw)  # (B,)
