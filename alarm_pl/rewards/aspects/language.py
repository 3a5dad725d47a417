"""Language confidence (lingua, offline): probability that a response is in the target language."""

from __future__ import annotations

from typing import Sequence

import torch

from alarm_pl.rewards.base import Score, Scorer, ScoringInput


class LanguageConfidenceScorer(Scorer):
    """lingua's confidence that each response is in ``target`` rather than the other listed languages.

    The paper's MT aspect (PAPER.md §2): the probability that a Spanish → English translation is English vs Spanish,
    on the last token. The value placed on the last real token and the metric are both this confidence in [0, 1]
    (higher is better). A response without text gets 0.

    Args:
        target: the wanted language, a lingua language name (``english``, ``spanish``, ``german`` ...).
        languages: the languages the detector chooses among (must include ``target``); the detector is built from
            these only, which keeps memory and start-up small.
        low_accuracy: lingua's low-accuracy mode (trigram models only): faster and smaller, less reliable on very
            short texts.
        **kwargs: ``name``, ``weight``, ``normalizer``, ``shaping`` of ``Scorer``.
    """

    default_name = "language"

    def __init__(
        self,
        target: str = "english",
        languages: Sequence[str] = ("english", "spanish"),
        low_accuracy: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        languages = [lang.lower() for lang in languages]
        if target.lower() not in languages or len(set(languages)) < 2:
            raise ValueError(
                f"scorer {self.name!r}: languages must list at least two languages including the "
                f"target {target!r}, got {languages}"
            )
        self.target = target.lower()
        self.languages = languages
        self.low_accuracy = low_accuracy
        self._detector = None
        self._target = None

    def setup(self, device: torch.device) -> None:
        """Build the lingua detector from the listed languages."""
        from lingua import Language, LanguageDetectorBuilder

        try:
            langs = [Language.from_str(lang) for lang in self.languages]
        except ValueError as err:
            raise ValueError(f"scorer {self.name!r}: unknown lingua language in {self.languages}: {err}") from err
        builder = LanguageDetectorBuilder.from_languages(*langs)
        if self.low_accuracy:
            builder = builder.with_low_accuracy_mode()
        self._detector = builder.build()
        self._target = Language.from_str(self.target)

    def confidence(self, text: str) -> float:
        """Confidence in [0, 1] that ``text`` is in the target language; 0 for text without letters."""
        if self._detector is None:
            self.setup(torch.device("cpu"))
        if not text.strip():
            return 0.0
        return float(self._detector.compute_language_confidence(text, self._target))

    def score(self, inputs: ScoringInput) -> Score:
        """Confidence per response (B,), placed on its last real token; metric = the same."""
        value = torch.tensor([self.confidence(text) for text in inputs.responses], dtype=torch.float32)  # (B,)
        return Score.sequence(value, inputs.response_mask, metric=value, higher_is_better=True)
