"""Spelling errors (pyspellchecker, offline): a dense token-level aspect, like the paper's grammar aspect."""

from __future__ import annotations

import torch

from alarm_pl.rewards.align import char_spans_to_token_mask, scatter_token_values
from alarm_pl.rewards.base import Score, Scorer, ScoringInput, Span
from alarm_pl.rewards.text import word_spans


class SpellingScorer(Scorer):
    """Misspelled words by dictionary lookup (pyspellchecker's word-frequency lists; no network, no server).

    Every real response token gets ``correct_value``; tokens overlapping a misspelled word get ``error_value``
    (the scheme of the paper's LanguageTool grammar aspect, PAPER.md §2). Hyphenated words are checked part by
    part. Metric: misspelled words / response tokens (lower is better). A response without text (no tokens, or
    only special tokens) gets metric 0 and no placed values.

    Args:
        language: pyspellchecker dictionary: ``en``, ``es``, ``fr``, ``pt``, ``de``, ``it``, ``ru``, ``ar``, ``lv``,
            ``eu``, ``nl``, ``fa``.
        correct_value: value placed on tokens outside misspelled words.
        error_value: value placed on tokens overlapping a misspelled word.
        skip_acronyms: do not check all-uppercase words of two or more letters (``EU``, ``NATO``), which no
            dictionary lists.
        **kwargs: ``name``, ``weight``, ``normalizer``, ``shaping`` of ``Scorer``.
    """

    default_name = "spelling"

    def __init__(
        self,
        language: str = "en",
        correct_value: float = 0.0,
        error_value: float = -1.0,
        skip_acronyms: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.language = language
        self.correct_value = float(correct_value)
        self.error_value = float(error_value)
        self.skip_acronyms = skip_acronyms
        self._checker = None

    def setup(self, device: torch.device) -> None:
        """Load the pyspellchecker dictionary (about 0.2 s for English)."""
        from spellchecker import SpellChecker

        try:
            self._checker = SpellChecker(language=self.language)
        except ValueError as err:
            raise ValueError(
                f"scorer {self.name!r}: pyspellchecker has no dictionary {self.language!r}: {err}"
            ) from err

    def misspelled_spans(self, text: str) -> list[Span]:
        """Character spans of the misspelled words (or word parts between hyphens) of ``text``."""
        if self._checker is None:
            self.setup(torch.device("cpu"))
        parts = []
        for start, end in word_spans(text):
            offset = start
            for part in text[start:end].split("-"):
                if not (self.skip_acronyms and len(part) > 1 and part.isupper()):
                    parts.append((offset, offset + len(part)))
                offset += len(part) + 1
        unknown = self._checker.unknown([text[a:b] for a, b in parts])  # lower-cased words
        return [(a, b) for a, b in parts if text[a:b].lower() in unknown]

    def score(self, inputs: ScoringInput) -> Score:
        """Per-token values on every real token (B, T); metric = misspellings per response token (B,)."""
        positions, values, metric = [], [], []
        for text, spans in zip(inputs.responses, inputs.token_spans):
            has_text = bool(text.strip()) and bool(spans)
            errors = self.misspelled_spans(text) if has_text else []
            marked = char_spans_to_token_mask(spans, errors) if has_text else []
            positions.append(range(len(marked)))
            values.append([self.error_value if m else self.correct_value for m in marked])
            metric.append(len(errors) / len(spans) if has_text else 0.0)
        token_values, placed = scatter_token_values(inputs.response_mask, positions, values)  # (B, T) each
        return Score(
            values=token_values,
            placed=placed,
            metric=torch.tensor(metric, dtype=torch.float32, device=placed.device),
            higher_is_better=False,
        )
