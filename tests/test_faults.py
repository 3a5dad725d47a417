"""Faults during a run (alarm_pl/faults.py): a scorer that raises names itself and the sample, a non-finite score
drops its sample (and never reaches a normaliser or the rewards), a broken scorer stops the run, out-of-memory errors
name the knobs, and every process agrees on a fault."""

from __future__ import annotations

import math

import pytest
import torch

from alarm_pl.config import RewardConfig
from alarm_pl.faults import (
    MEMORY_KNOBS,
    OutOfMemoryFault,
    RolloutFault,
    ScorerFault,
    agree_across_processes,
    guard_memory,
)
from alarm_pl.rewards.base import Score, Scorer, ScorerUnavailable, ScoringInput
from alarm_pl.rewards.checks import NonFiniteFilter, run_scorer, without_rows
from alarm_pl.rewards.normalize import RunningNormalizer
from alarm_pl.rewards.pipeline import ScoringPipeline

LENGTHS = [3, 1, 2, 3]  # mixed lengths, right padding


def scoring_input() -> ScoringInput:
    mask = torch.arange(3).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)  # (4, 3)
    return ScoringInput(
        prompts=["p0", "p1", "p2", "p3"],
        responses=["a b", "x", "c d", "e f"],
        references=[None] * 4,
        metadata=[{}] * 4,
        response_ids=mask.long(),
        response_mask=mask,
        token_spans=[[(0, 1), (1, 2), (3, 3)], [(0, 1)], [(0, 1), (1, 3)], [(0, 1), (1, 2), (3, 3)]],
    )


class Holistic(Scorer):
    """Raw holistic rewards 1, 2, 3, 4; ``bad`` rows get ``bad_value``."""

    def __init__(self, bad: tuple[int, ...] = (), bad_value: float = math.nan, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bad, self.bad_value = bad, bad_value

    def score(self, inputs: ScoringInput) -> Score:
        value = torch.arange(1.0, len(inputs) + 1)
        value[list(self.bad)] = self.bad_value
        return Score.sequence(value, inputs.response_mask)


class PerToken(Scorer):
    """1.0 on every real token; ``bad`` rows get an infinite value on their first token."""

    def __init__(self, bad: tuple[int, ...] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.bad = bad

    def score(self, inputs: ScoringInput) -> Score:
        mask = inputs.response_mask
        values = mask.float().clone()
        for row in self.bad:
            values[row, 0] = math.inf
        return Score(values=values, placed=mask.clone(), metric=values.sum(dim=1))


class FailsOn(Scorer):
    """Raises on any batch that holds response ``text``."""

    def __init__(self, text: str, error: Exception, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text, self.error = text, error

    def score(self, inputs: ScoringInput) -> Score:
        if self.text in inputs.responses:
            raise self.error
        return Score.sequence(torch.ones(len(inputs)), inputs.response_mask)


def test_a_raising_scorer_is_named_with_the_sample_it_fails_on():
    scorer = FailsOn("c d", ValueError("cannot parse"), name="judge")
    with pytest.raises(ScorerFault) as caught:
        run_scorer(scorer, scoring_input())
    message = str(caught.value)
    assert "scorer 'judge' raised ValueError on sample 2 of the batch (prompt 'p2', response 'c d')" in message
    assert "cannot parse" in message


def test_an_unreachable_server_is_named_not_retried_per_sample():
    scorer = FailsOn("a b", ScorerUnavailable("LanguageTool request to http://lt:8081/v2/check failed"), name="grammar")
    with pytest.raises(ScorerFault, match=r"scorer 'grammar' is unavailable: .*http://lt:8081/v2/check"):
        run_scorer(scorer, scoring_input())


def test_wrong_shapes_are_a_scorer_fault():
    class Short(Scorer):
        def score(self, inputs):
            return Score(values=torch.zeros(2, 3), placed=torch.zeros(2, 3, dtype=torch.bool), metric=torch.zeros(2))

    with pytest.raises(
        ScorerFault, match=r"scorer 'short' returned values \(2, 3\) / metric \(2,\); expected \(4, 3\)"
    ):
        run_scorer(Short(name="short"), scoring_input())


def test_out_of_memory_in_a_scorer_names_the_knobs():
    scorer = FailsOn("x", torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), name="rm")
    with pytest.raises(OutOfMemoryFault) as caught:
        run_scorer(scorer, scoring_input())
    message = str(caught.value)
    assert "out of memory during scoring by 'rm' (CUDA out of memory. Tried to allocate 2.00 GiB)" in message
    assert all(knob in message for knob in MEMORY_KNOBS)


def test_guard_memory_turns_only_out_of_memory_into_an_agreed_fault():
    def oom():
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 GB: out of memory")

    with pytest.raises(OutOfMemoryFault) as caught:
        guard_memory("generation", oom)
    assert caught.value.agreed and "out of memory during generation" in str(caught.value)
    with pytest.raises(KeyError):
        guard_memory("generation", lambda: {}["missing"])
    assert guard_memory("generation", lambda: 7) == 7


def test_agreement_in_one_process_raises_the_local_fault_marked_agreed():
    agree_across_processes(None)  # nothing to agree on
    fault = RolloutFault("scorer 'x' failed")
    with pytest.raises(RolloutFault) as caught:
        agree_across_processes(fault)
    assert caught.value is fault and fault.agreed
    fault.checkpoint_path = "runs/x/last.ckpt"
    assert str(fault).endswith("resume with --ckpt_path runs/x/last.ckpt")


def test_non_finite_rows_are_found_and_emptied():
    inputs = scoring_input()
    score = PerToken(bad=(2,), name="spelling").score(inputs)
    rows = NonFiniteFilter().check("spelling", score, inputs)
    assert rows.tolist() == [False, False, True, False]
    emptied = without_rows(score, rows)
    assert emptied.placed[2].tolist() == [False, False, False] and emptied.values[2].tolist() == [0.0, 0.0, 0.0]
    assert math.isnan(float(emptied.metric[2])) and emptied.metric[[0, 1, 3]].tolist() == [3.0, 1.0, 3.0]
    assert torch.equal(emptied.placed[[0, 1, 3]], inputs.response_mask[[0, 1, 3]])


def test_a_scorer_non_finite_on_most_of_a_batch_stops_the_run():
    inputs = scoring_input()
    score = PerToken(bad=(0, 1, 3), name="spelling").score(inputs)
    with pytest.raises(
        ScorerFault,
        match=r"'spelling' returned NaN or infinite values for 3 of 4 samples, e\.g\. "
        r"sample 0 of the batch",
    ):
        NonFiniteFilter().check("spelling", score, inputs)


def test_the_pipeline_drops_a_nan_sample_from_rewards_and_normalisers():
    normalizer = RunningNormalizer(min_count=1)
    pipeline = ScoringPipeline(
        Holistic(bad=(1,), name="holistic", normalizer=normalizer),
        [PerToken(bad=(3,), name="spelling")],
        RewardConfig(degenerate_max_tokens=0),
    )
    scored = pipeline.score(scoring_input())
    assert scored.dropped.tolist() == [False, True, False, True]
    assert scored.dropped_by == {"holistic": 1, "spelling": 1}
    # a dropped sample is dropped by every scorer: row 3's finite H (4) does not reach the normaliser either
    assert int(normalizer.count) == 2 and float(normalizer.mean) == pytest.approx((1 + 3) / 2)
    assert bool(torch.isfinite(scored.holistic).all()) and scored.holistic[[1, 3]].tolist() == [0.0, 0.0]
    spelling = scored.aspect_rewards["spelling"]
    assert bool(torch.isfinite(spelling).all()) and spelling[[1, 3]].abs().sum() == 0
    assert spelling[0].tolist() == pytest.approx([torch.sigmoid(torch.tensor(1.0)).item()] * 3)


def test_a_failing_scorer_leaves_the_normalisers_untouched():
    normalizer = RunningNormalizer(min_count=1)
    pipeline = ScoringPipeline(
        Holistic(name="holistic", normalizer=normalizer),
        [FailsOn("x", ValueError("boom"), name="judge")],
        RewardConfig(),
    )
    with pytest.raises(ScorerFault) as caught:
        pipeline.score(scoring_input())
    assert caught.value.agreed and int(normalizer.count) == 0  # the batch changed no state


def test_a_non_finite_gradient_stops_before_the_optimizer_step():
    from types import SimpleNamespace

    from alarm_pl.faults import NonFiniteError
    from alarm_pl.module import ALaRMModule

    weight = torch.nn.Parameter(torch.ones(3))
    (weight * torch.tensor([1.0, math.nan, 2.0])).sum().backward()
    inner = torch.optim.SGD([weight], lr=0.1)
    optimizer = SimpleNamespace(optimizer=inner, step=inner.step, zero_grad=inner.zero_grad)
    module = SimpleNamespace(
        policy=SimpleNamespace(trainable_parameters=lambda: [weight]),
        ppo_config=SimpleNamespace(max_grad_norm=1.0),
        global_step=4,
        trainer=SimpleNamespace(checkpoint_callback=SimpleNamespace(last_model_path="runs/x/checkpoints/last.ckpt")),
    )
    with pytest.raises(
        NonFiniteError,
        match=r"rollout 5: the gradient norm is nan .* not applied .* The last "
        r"checkpoint is runs/x/checkpoints/last.ckpt",
    ):
        ALaRMModule._optimizer_step(module, optimizer, counted=True)
    assert weight.detach().tolist() == [1.0, 1.0, 1.0]
