"""Aspects read off frozen fine-grained reward models (FineGrainedRLHF-style, the paper's QA aspects).

- ``TokenClassificationAspect`` (relevance per sub-sentence, factuality per sentence): the response is split into
  units (``rewards/text.py``); the reward model sees the template filled with the response and is read at each
  unit's end. By default that is the token (in the reward model's own tokenization, found through the fast
  tokenizer's character offsets) covering the unit's last visible character. With ``separator`` (e.g. ``</s>``,
  for models trained with a marker after each unit, as FineGrainedRLHF's are — check your checkpoint), the model's
  copy of the response gets `` {separator}`` after every unit and is read at that separator token. The predicted
  label gives ``positive_value`` or ``negative_value``, placed on the *policy* token that ends the unit
  (``align.token_ending_at``). Metric: the share of positive units (higher is better; "factuality rate").
  Units whose read position was cut off by ``max_length`` (left truncation) get no value and are not counted.
- ``SequenceRegressionAspect`` (completeness): ``scale`` × the model's output on the last token; metric: the raw
  output. A ``normalizer`` sees the scaled value, so give its constants in those units (or use ``scale: 1``).
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import Tensor

from alarm_pl.models.reward_model import TokenLogits
from alarm_pl.rewards.base import Score, ScorerError, ScoringInput
from alarm_pl.rewards.holistic import RewardModelScorer

Span = tuple[int, int]
QA_TEMPLATE = "{prompt} answer: {response}"
"""A default for QA-Feedback prompts (they already read ``question: … context: …``); set the template to the input
format your fine-grained reward model was trained on."""


def token_at_char(offsets: Tensor, char: int) -> Optional[int]:
    """Index of the token whose character span ``[start, end)`` covers ``char``, or None (truncated away).

    Args:
        offsets: (L, 2) token character spans of the formatted text.
        char: a character index into the formatted text.
    """
    covers = ((offsets[:, 0] <= char) & (char < offsets[:, 1])).nonzero()  # (n, 1)
    return int(covers[0, 0]) if len(covers) else None


def with_separators(text: str, units: list[Span], separator: Optional[str]) -> tuple[str, list[int]]:
    """The response as the reward model sees it, and the character (in it) to read for each unit.

    Without a separator the text is unchanged and each unit is read at its last visible character; with one,
    `` {separator}`` follows every unit and the unit is read at the separator's first character.
    """
    if separator is None:
        return text, [len(text[:end].rstrip()) - 1 for _, end in units]
    out, reads, cursor = "", [], 0
    for _, end in units:
        out += text[cursor:end] + " "
        reads.append(len(out))
        out += separator
        cursor = end
    return out + text[cursor:], reads


class TokenClassificationAspect(RewardModelScorer):
    """Per-unit labels of a frozen token classifier, placed on the policy tokens ending each unit.

    Args:
        model_name_or_path: an ``AutoModelForTokenClassification`` checkpoint (local, hub id or ``tiny:<name>``).
        unit: ``sentence`` (factuality) or ``subsentence`` (relevance: split at ``,;!?`` with ≥ ``min_words``).
        positive_value: value of a unit predicted ``positive_label`` (paper: +0.5 factuality, +0.3 relevance).
        negative_value: value of any other unit (paper: −0.5 / −0.3).
        positive_label: the class index meaning "good" (no error / relevant).
        template: the model's input; placeholders ``{prompt}``, ``{response}``, ``{reference}``.
        min_words: the shortest sub-sentence (``unit="subsentence"``).
        separator: a token inserted after each unit in the model's input and read there (e.g. ``</s>``), or None.
        **kwargs: loading and ``Scorer`` arguments of ``RewardModelScorer`` (batch_size, max_length, dtype, ...).
    """

    default_name = "factuality"
    head_kind = "token"

    def __init__(self, model_name_or_path: str, unit: Literal["sentence", "subsentence"] = "sentence",
                 positive_value: float = 0.5, negative_value: float = -0.5, positive_label: int = 1,
                 template: str = QA_TEMPLATE, min_words: int = 5, separator: Optional[str] = None, **kwargs) -> None:
        super().__init__(model_name_or_path, template=template, **kwargs)
        if unit not in ("sentence", "subsentence"):
            raise ValueError(f"scorer {self.name!r}: unit must be 'sentence' or 'subsentence', got {unit!r}")
        self.unit, self.min_words, self.separator = unit, int(min_words), separator
        self.positive_value, self.negative_value = float(positive_value), float(negative_value)
        self.positive_label = int(positive_label)

    def units(self, text: str) -> list[Span]:
        """The non-blank sentences or sub-sentences of ``text`` as character spans."""
        from alarm_pl.rewards.text import split_sentences, split_subsentences

        spans = split_sentences(text) if self.unit == "sentence" else split_subsentences(text, self.min_words)
        return [(start, end) for start, end in spans if text[start:end].strip()]

    def unit_labels(self, inputs: ScoringInput, units: list[list[Span]]) -> list[list[Optional[bool]]]:
        """For each response and unit: is the unit predicted positive (None: its read token was truncated away)."""
        shown = [with_separators(text, spans, self.separator) for text, spans in zip(inputs.responses, units)]
        try:
            formatted = self.model.format(inputs.prompts, [text for text, _ in shown], inputs.references)
        except ValueError as err:
            raise ScorerError(f"scorer {self.name!r}: {err}") from err
        outputs: list[TokenLogits] = self.model.token_logits([text for text, _ in formatted])
        labels = []
        for (_, reads), (_, offset), out in zip(shown, formatted, outputs):
            tokens = [token_at_char(out.offsets, offset + read) for read in reads]
            labels.append([None if t is None else int(out.logits[t].argmax()) == self.positive_label
                           for t in tokens])
        return labels

    def score(self, inputs: ScoringInput) -> Score:
        """±value on the policy token ending each unit; metric: share of positive units (0 without units)."""
        from alarm_pl.rewards.align import scatter_token_values, token_ending_at

        if self.model is None:
            raise ScorerError(f"scorer {self.name!r}: call setup(device) before score()")
        units = [self.units(text) for text in inputs.responses]
        labels = self.unit_labels(inputs, units)
        positions, values, metric = [], [], []
        for i, (spans, row) in enumerate(zip(units, labels)):
            placed: dict[int, float] = {}  # two units ending on one policy token add up
            for (_, end), positive in zip(spans, row):
                if positive is None:
                    continue
                try:
                    token = token_ending_at(inputs.token_spans[i], end, inputs.responses[i])
                except ValueError as err:
                    raise ScorerError(f"scorer {self.name!r}, response {i}: {err}") from err
                placed[token] = placed.get(token, 0.0) + (self.positive_value if positive else self.negative_value)
            counted = [p for p in row if p is not None]
            metric.append(sum(counted) / len(counted) if counted else 0.0)
            positions.append(list(placed))
            values.append(list(placed.values()))
        value_tensor, placed_tensor = scatter_token_values(inputs.response_mask, positions, values)  # (B, T) each
        return Score(values=value_tensor, placed=placed_tensor, higher_is_better=True,
                     metric=torch.tensor(metric, dtype=torch.float32, device=inputs.response_mask.device))


class SequenceRegressionAspect(RewardModelScorer):
    """``scale`` × a frozen regression model's output on the last token (completeness); metric: the raw output.

    Args:
        model_name_or_path: an ``AutoModelForSequenceClassification`` checkpoint with one output.
        scale: the factor on the placed value (paper: 0.3 for completeness).
        template: the model's input; placeholders ``{prompt}``, ``{response}``, ``{reference}``.
        **kwargs: loading and ``Scorer`` arguments of ``RewardModelScorer``.
    """

    default_name = "completeness"

    def __init__(self, model_name_or_path: str, scale: float = 0.3, template: str = QA_TEMPLATE, **kwargs) -> None:
        super().__init__(model_name_or_path, template=template, **kwargs)
        self.scale = float(scale)

    def score(self, inputs: ScoringInput) -> Score:
        raw = self.raw_rewards(inputs).to(inputs.response_mask.device)  # (B,)
        return Score.sequence(self.scale * raw, inputs.response_mask, metric=raw, higher_is_better=True)
