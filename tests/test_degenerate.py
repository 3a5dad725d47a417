"""Degenerate (empty) responses as the authors treat them: H := −10 in training, w_h·H on the last token under every
strategy, and generation files that report the reward model's H with the penalty as its own field."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from alarm_pl.config import GenerationConfig, RewardConfig
from alarm_pl.data.prompts import PromptBatch
from alarm_pl.eval.collector import EvalCollector
from alarm_pl.eval.records import read_generations, run_identity
from alarm_pl.rewards.base import Score, Scorer, ScoringInput
from alarm_pl.rewards.compose import STRATEGIES, compose_rewards
from alarm_pl.rewards.normalize import FixedNormalizer
from alarm_pl.rewards.pipeline import ScoringPipeline

LENGTHS = [3, 1, 2]  # response 1 is EOS only (the authors' "too short": decoder start + EOS = 2 trl tokens)
RAW = [4.0, 6.0, 1.0]  # raw holistic rewards; FixedNormalizer(2, 2) → z = 1, 2, −0.5


class RawHolistic(Scorer):
    """Holistic stub: the raw rewards ``RAW`` on each response's last token."""

    def score(self, inputs: ScoringInput) -> Score:
        return Score.sequence(torch.tensor(RAW), inputs.response_mask)


class EveryToken(Scorer):
    """Aspect stub: 0 on every real token (σ(0) = 0.5 after shaping); metric 7."""

    def score(self, inputs: ScoringInput) -> Score:
        mask = inputs.response_mask
        return Score(values=torch.zeros(mask.shape), placed=mask.clone(), metric=torch.full((len(inputs),), 7.0))


def scoring_input() -> ScoringInput:
    mask = torch.arange(3).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)  # (3, 3)
    return ScoringInput(
        prompts=["p0", "p1", "p2"],
        responses=["a b", "", "c"],
        references=[None, None, "ref"],
        metadata=[{}] * 3,
        response_ids=mask.long(),
        response_mask=mask,
        token_spans=[[(0, 1), (1, 3), (3, 3)], [(0, 0)], [(0, 1), (1, 1)]],
    )


def scored_batch(reward: RewardConfig = RewardConfig()):
    pipeline = ScoringPipeline(
        RawHolistic(name="holistic", normalizer=FixedNormalizer(2.0, 2.0)), [EveryToken(name="grammar")], reward
    )
    return pipeline, pipeline.score(scoring_input(), update_normalizers=False)


def test_only_the_empty_response_is_degenerate_and_gets_the_penalty():
    _, scored = scored_batch()
    assert scored.degenerate.tolist() == [False, True, False]  # 1 token (EOS) yes, 2 tokens no
    assert scored.holistic.tolist() == [1.0, -10.0, -0.5]  # the penalty replaces H in training
    assert scored.holistic_unpenalized.tolist() == [1.0, 2.0, -0.5]  # what the reward model said, z-normalised
    grammar = scored.aspect_rewards["grammar"]
    assert grammar.tolist() == [[0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0]]  # none on the degenerate row
    _, off = scored_batch(RewardConfig(degenerate_max_tokens=0))
    assert not off.degenerate.any() and off.holistic.tolist() == [1.0, 2.0, -0.5]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_degenerate_row_gets_w_h_times_penalty_on_its_last_token_under_every_strategy(strategy):
    _, scored = scored_batch()
    mask = scoring_input().response_mask
    aspects = scored.aspect_rewards["grammar"]
    reward = compose_rewards(
        scored.holistic, aspects, mask, strategy, threshold=0.5, holistic_weight=3.0, degenerate=scored.degenerate
    )
    # row 1 (degenerate, one token): 3 · (−10) on that token, whatever the strategy, aspect_only included
    assert reward[1].tolist() == [-30.0, 0.0, 0.0]
    # the other rows follow the strategy: row 0 H = 1 ≥ τ, row 2 H = −0.5 < τ; aspects 0.5 per token
    expected = {
        "holistic_only": [[0, 0, 3.0], [0, -1.5, 0]],
        "aspect_only": [[0.5, 0.5, 0.5], [0.5, 0.5, 0]],
        "weighted_sum": [[0.5, 0.5, 3.5], [0.5, -1.0, 0]],
        "hierarchical": [[0.5, 0.5, 3.5], [0, -1.5, 0]],
    }[strategy]
    assert reward[[0, 2]].tolist() == expected
    without = compose_rewards(scored.holistic, aspects, mask, strategy, 0.5, 3.0)  # no degenerate flag given
    assert torch.equal(without[[0, 2]], reward[[0, 2]])
    with pytest.raises(ValueError, match="degenerate must be"):
        compose_rewards(scored.holistic, aspects, mask, strategy, 0.5, 3.0, degenerate=torch.zeros(2, dtype=torch.bool))


def test_generation_file_reports_unpenalized_holistic_and_flags_degenerate(tmp_path):
    pipeline, scored = scored_batch()
    inputs = scoring_input()
    collector = EvalCollector(str(tmp_path))
    collector.add(
        PromptBatch(inputs.prompts, inputs.references, inputs.metadata, [0, 1, 2]),
        inputs,
        scored,
        pipeline.holistic_scorer.name,
        pipeline.aspect_names,
    )
    run = run_identity({}, None, dataclasses.asdict(GenerationConfig()), 5, stage="test")
    collector.finish(str(tmp_path / "test-step000005.jsonl"), run)
    records = read_generations(collector.last_path)
    assert records[0].run == run
    assert [r.holistic for r in records] == [1.0, 2.0, -0.5]  # no −10 in the file, as the authors' test files
    assert [r.degenerate for r in records] == [False, True, False]
    assert [r.holistic_raw for r in records] == RAW
    # a file written before the field existed still reads (as not degenerate)
    old = {"prompt": "p", "generation": "g", "holistic": -10.0, "length": 1}
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    assert read_generations(tmp_path / "old.jsonl")[0].degenerate is False
    (tmp_path / "bad.jsonl").write_text(json.dumps({**old, "degenerate": "yes"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1.*degenerate"):
        read_generations(tmp_path / "bad.jsonl")
