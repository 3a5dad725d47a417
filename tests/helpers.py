"""Small builders shared by the trainer tests (offline, tiny)."""

from __future__ import annotations

import torch

from alarm_pl.rewards.base import Score, Scorer, ScoringInput


class LastTokenIdScorer(Scorer):
    """Test scorer: a sequence value equal to the response's length, placed on its last token; per-token values
    equal to each token's position + 1 (so a misalignment is visible)."""

    default_name = "probe"

    def score(self, inputs: ScoringInput) -> Score:
        mask = inputs.response_mask
        positions = torch.arange(mask.shape[1]).unsqueeze(0).expand_as(mask).float() + 1
        return Score(values=positions * mask, placed=mask.clone(), metric=inputs.lengths.float())


class KeywordScorer(Scorer):
    """Test holistic reward: the share of response words that are in ``keywords`` (higher is better)."""

    default_name = "keywords"

    def __init__(self, keywords: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.keywords = {k.lower() for k in keywords}

    def score(self, inputs: ScoringInput) -> Score:
        values = []
        for text in inputs.responses:
            words = [w.strip(".,?¿!").lower() for w in text.split()]
            values.append(sum(w in self.keywords for w in words) / max(len(words), 1))
        return Score.sequence(torch.tensor(values), inputs.response_mask)
