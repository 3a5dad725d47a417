"""Hand-made paired data for the aspect-selection tests, and a fake of the module's ``PolicyScorer`` protocol."""

from __future__ import annotations

import torch

from alarm_pl.data.prompts import PromptBatch
from alarm_pl.rewards.base import Score, ScoringInput
from alarm_pl.rollout import Rollout

CANDIDATES = ["grammar", "good", "bad"]
# Paired data of one batch, B = 4. Greedy side a: H_a = [1, -1, 1, -1]; sampled side b: H_b = 0 -> ΔH = [+, -, +, -].
H_GREEDY = [1.0, -1.0, 1.0, -1.0]
# Greedy aspect metrics; the sampled side has grammar = 1 (an error rate, lower is better) and 0 for the others.
#   grammar (lower better): oriented Δ = -(m_a - 1) = [+, -, +, -] -> agrees on all 4 -> 0/4
#   good: Δ = [+, -, +, +] -> disagrees on pair 3 -> 1/4
#   bad:  Δ = [-, +, +, -] -> disagrees on pairs 0, 1 -> 2/4
CONSISTENT = {"grammar": [0.0, 2.0, 0.0, 2.0], "good": [1.0, -1.0, 1.0, 1.0], "bad": [-1.0, 1.0, 1.0, -1.0]}
# grammar flipped: oriented Δ = [-, +, -, +] -> disagrees on all 4 -> 4/4; the others as above
GRAMMAR_FLIPPED = {**CONSISTENT, "grammar": [2.0, 0.0, 2.0, 0.0]}
SAMPLED = {"grammar": [1.0] * 4, "good": [0.0] * 4, "bad": [0.0] * 4}


def make_rollout(sampled: dict[str, list[float]], holistic: list[float], lengths: list[int]) -> Rollout:
    """A hand-built rollout: right-padded responses of ``lengths``; grammar is an error rate (lower is better)."""
    batch, width = len(lengths), max(lengths)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (B, T)
    ids = torch.where(mask, torch.full(mask.shape, 5), torch.zeros(mask.shape, dtype=torch.long))
    inputs = ScoringInput(
        prompts=[f"p{i}" for i in range(batch)],
        responses=["r" * n for n in lengths],
        references=[None] * batch,
        metadata=[{}] * batch,
        response_ids=ids,
        response_mask=mask,
        token_spans=[[(i, i + 1) for i in range(n)] for n in lengths],
    )
    scores = {
        name: Score(
            values=torch.zeros(mask.shape),
            placed=torch.zeros(mask.shape, dtype=torch.bool),
            metric=torch.tensor(values),
            higher_is_better=name != "grammar",
        )
        for name, values in sampled.items()
    }
    zeros = torch.zeros(mask.shape)
    return Rollout(
        query_ids=ids,
        query_mask=mask,
        response_ids=ids,
        response_mask=mask,
        inputs=inputs,
        old_logprobs=zeros,
        ref_logprobs=zeros,
        values=zeros,
        scores=scores,
        holistic_name="holistic",
        holistic=torch.tensor(holistic),
        aspect_rewards={name: zeros.clone() for name in sampled},
        degenerate=torch.zeros(batch, dtype=torch.bool),
        stats={"time/generate": 1.5},
    )


def sampled_rollout() -> Rollout:
    """A training rollout whose sampled responses carry ``SAMPLED`` and H = 0."""
    return make_rollout(SAMPLED, [0.0] * 4, [3, 1, 2, 3])


def prompt_batches(sizes: list[int]) -> list[PromptBatch]:
    """Prompt batches of the given sizes with distinct prompts."""
    batches, start = [], 0
    for size in sizes:
        prompts = [f"prompt {start + i}" for i in range(size)]
        batches.append(PromptBatch(prompts, [None] * size, [{} for _ in range(size)], list(range(start, start + size))))
        start += size
    return batches


class FakeScorer:
    """The ``PolicyScorer`` protocol. Greedy responses (side a) carry ``holistic`` and, call after call, the entries
    of ``greedy_metrics`` (the last one repeats); sampled responses (side b) carry ``SAMPLED`` and H = 0. Each batch
    gets the first B values.

    Attributes:
        calls: greedy scorings so far.
        log: ``(batch size, do_sample)`` of every call.
    """

    def __init__(self, greedy_metrics: list[dict[str, list[float]]], holistic: list[float] = H_GREEDY) -> None:
        self.greedy_metrics = greedy_metrics
        self.holistic = holistic
        self.calls = 0
        self.log: list[tuple[int, bool]] = []

    def score_prompts(self, batch: PromptBatch, do_sample: bool) -> tuple[torch.Tensor, dict[str, Score]]:
        n = len(batch)
        self.log.append((n, do_sample))
        if do_sample:
            metrics, holistic = SAMPLED, [0.0] * 4
        else:
            metrics, holistic = self.greedy_metrics[min(self.calls, len(self.greedy_metrics) - 1)], self.holistic
            self.calls += 1
        side = make_rollout({name: values[:n] for name, values in metrics.items()}, holistic[:n], [2] * n)
        return side.holistic, side.scores
