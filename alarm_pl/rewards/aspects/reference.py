"""Similarity to the reference (sacrebleu chrF or BLEU): a sequence-level aspect, or the holistic reward of a task
with references (e.g. the tiny MT configuration)."""

from __future__ import annotations

from typing import Literal

import torch

from alarm_pl.rewards.base import Score, Scorer, ScorerError, ScoringInput


class ReferenceScorer(Scorer):
    """Sentence-level chrF or BLEU of each response against its reference (sacrebleu), on the last token.

    Higher is better; metric and placed value are both the sacrebleu score in its usual 0–100 units. Every prompt of
    the batch must have a reference.

    Args:
        metric: ``chrf`` (character n-gram F-score, robust on short outputs) or ``bleu`` (sentence BLEU with
            sacrebleu's default exponential smoothing).
        word_order: chrF only: word n-gram order (0 = chrF, 2 = chrF++).
        lowercase: compare case-insensitively.
        **kwargs: ``name`` (default: the metric, ``chrf`` / ``bleu``), ``weight``, ``normalizer``, ``shaping`` of
            ``Scorer`` (weight and shaping are ignored when the scorer is the holistic reward).

    Raises:
        ScorerError: from ``score`` when a prompt has no reference (names the scorer and the prompt index).
    """

    default_name = "reference"

    def __init__(
        self,
        metric: Literal["chrf", "bleu"] = "chrf",
        word_order: int = 0,
        lowercase: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not kwargs.get("name"):
            self.name = metric
        if metric not in ("chrf", "bleu"):
            raise ValueError(f"scorer {self.name!r}: metric must be 'chrf' or 'bleu', got {metric!r}")
        if word_order < 0 or (word_order and metric != "chrf"):
            raise ValueError(f"scorer {self.name!r}: word_order must be >= 0 and is for chrf only, got {word_order}")
        self.metric = metric
        self.word_order = word_order
        self.lowercase = lowercase
        self._scorer = None

    def setup(self, device: torch.device) -> None:
        """Build the sacrebleu metric object (once)."""
        from sacrebleu.metrics import BLEU, CHRF

        if self.metric == "chrf":
            self._scorer = CHRF(word_order=self.word_order, lowercase=self.lowercase)
        else:
            self._scorer = BLEU(lowercase=self.lowercase, effective_order=True)

    def score(self, inputs: ScoringInput) -> Score:
        """Sentence-level score per response (B,), placed on its last real token."""
        if self._scorer is None:
            self.setup(torch.device("cpu"))
        scores = []
        for i, (response, reference) in enumerate(zip(inputs.responses, inputs.references)):
            if reference is None:
                raise ScorerError(
                    f"scorer {self.name!r}: prompt {i} of the batch has no reference "
                    f"(prompt starts {inputs.prompts[i][:60]!r}); {self.metric} needs one per prompt"
                )
            scores.append(self._scorer.sentence_score(response, [reference]).score)
        value = torch.tensor(scores, dtype=torch.float32)  # (B,)
        return Score.sequence(value, inputs.response_mask, metric=value, higher_is_better=True)
