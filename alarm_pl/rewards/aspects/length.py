"""Response length in policy tokens: a sequence-level aspect (a candidate of the paper's selection step)."""

from __future__ import annotations

from typing import Optional

from alarm_pl.rewards.base import Score, Scorer, ScoringInput


class LengthScorer(Scorer):
    """Length of each response in policy tokens, as a value on its last token.

    The paper uses length only as a *candidate* aspect in the selection step (PAPER.md §1: inconsistency with the
    holistic reward 54.1 % on QA and 43.7 % on MT, so it was never selected) and reports mean test lengths (QA 97.6,
    MT 37.0 tokens). The metric counts every real response token, the end-of-sequence token included when the policy
    produced one.

    Args:
        target_mean: when set, the placed value is (length − target_mean) / scale, a centred length (e.g. the SFT
            policy's mean length on the training prompts); when None, the placed value is the raw length.
        scale: divisor of the centred length (tokens per unit of value), > 0.
        higher_is_better: direction of the metric: True means longer responses are better (the reward-model bias that
            the paper's length candidate measured); False rewards shorter responses (the placed value is negated).
        **kwargs: ``name``, ``weight``, ``normalizer``, ``shaping`` of ``Scorer``.
    """

    default_name = "length"

    def __init__(
        self,
        target_mean: Optional[float] = None,
        scale: float = 1.0,
        higher_is_better: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if scale <= 0:
            raise ValueError(f"scorer {self.name!r}: scale must be > 0, got {scale}")
        self.target_mean = target_mean
        self.scale = float(scale)
        self.higher_is_better = higher_is_better

    def score(self, inputs: ScoringInput) -> Score:
        """Place the (centred, oriented) length on each response's last real token; metric = length (B,)."""
        lengths = inputs.lengths.float()  # (B,)
        value = lengths if self.target_mean is None else (lengths - self.target_mean) / self.scale  # (B,)
        if not self.higher_is_better:
            value = -value
        return Score.sequence(value, inputs.response_mask, metric=lengths, higher_is_better=self.higher_is_better)
