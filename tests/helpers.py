"""Small builders shared by the trainer tests (offline, tiny)."""

from __future__ import annotations

import dataclasses

import torch

from alarm_pl.callbacks.base import RolloutCallback
from alarm_pl.rewards.base import Score, Scorer, ScoringInput
from alarm_pl.rollout import Rollout


class LastTokenIdScorer(Scorer):
    """Test scorer: a sequence value equal to the response's length, placed on its last token; per-token values
    equal to each token's position + 1 (so a misalignment is visible)."""

    default_name = "probe"

    def score(self, inputs: ScoringInput) -> Score:
        mask = inputs.response_mask
        positions = torch.arange(mask.shape[1]).unsqueeze(0).expand_as(mask).float() + 1
        return Score(values=positions * mask, placed=mask.clone(), metric=inputs.lengths.float())


class KeywordScorer(Scorer):
    """Test holistic reward: the share of response words that are in ``keywords`` (higher is better), times ``sign``
    (−1 pays for fewer keywords)."""

    default_name = "keywords"

    def __init__(self, keywords: list[str], sign: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keywords = {k.lower() for k in keywords}
        self.sign = sign

    def score(self, inputs: ScoringInput) -> Score:
        values = []
        for text in inputs.responses:
            words = [w.strip(".,?¿!").lower() for w in text.split()]
            values.append(sum(w in self.keywords for w in words) / max(len(words), 1))
        return Score.sequence(self.sign * torch.tensor(values), inputs.response_mask)


class RewardProbe(RolloutCallback):
    """A user rollout callback (configured on the trainer): keeps every rollout it sees and adds one stat, the sum of
    the composed per-token rewards it received."""

    def __init__(self) -> None:
        self.seen: list[Rollout] = []

    def on_rollout_scored(self, trainer, module, rollout: Rollout) -> Rollout:
        self.seen.append(rollout)
        total = float("nan") if rollout.token_rewards is None else float(rollout.token_rewards.sum())
        return dataclasses.replace(rollout, stats={**rollout.stats, "probe/token_reward_sum": total})


# Shrinking overrides for the dummy architectures (the same as configs/smoke/*_cpu.yaml): real classes, CPU sizes.
T5_SHRINK = {
    "num_layers": 2,
    "num_decoder_layers": 2,
    "d_model": 64,
    "d_ff": 128,
    "num_heads": 4,
    "d_kv": 16,
    "vocab_size": 2048,
}
LLAMA_SHRINK = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 2048,
}
LONGFORMER_SHRINK = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "vocab_size": 2048,
    "attention_window": 64,
}
