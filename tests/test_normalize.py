"""Normalisers, shaping and the aspect/holistic reward pipeline."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from alarm_pl.rewards.base import Score, Scorer
from alarm_pl.rewards.normalize import (
    FixedNormalizer,
    RunningNormalizer,
    normalize_holistic,
    shape_aspect,
    shape_values,
)


def close(actual, expected, atol=1e-4):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


class StubScorer(Scorer):
    def score(self, inputs):
        raise AssertionError("not used")


def test_fixed_normalizer_arithmetic_and_state():
    norm = FixedNormalizer(mean=2.0, std=4.0)
    # (2-2)/4 = 0, (6-2)/4 = 1, (-2-2)/4 = -1
    assert norm(torch.tensor([2.0, 6.0, -2.0])).tolist() == [0.0, 1.0, -1.0]
    again = FixedNormalizer(mean=0.0, std=1.0)
    again.load_state_dict(norm.state_dict())  # constants travel in checkpoints
    assert again(torch.tensor([10.0])).item() == 2.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="std > 0"):
            FixedNormalizer(mean=0.0, std=bad)
    # scale and bias after the z-score (FineGrainedRLHF's completeness: ((r - mean) / std) * scale + bias):
    # 0.3 * (6 - 2) / 4 + 0.5 = 0.8, 0.3 * (-2 - 2) / 4 + 0.5 = 0.2
    scaled = FixedNormalizer(mean=2.0, std=4.0, scale=0.3, bias=0.5)
    assert scaled(torch.tensor([6.0, -2.0])).tolist() == pytest.approx([0.8, 0.2])


def test_running_normalizer_merge_equals_full_data():
    data = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 20.0, -5.0])
    norm = RunningNormalizer(eps=0.0)
    for chunk in (data[:3], data[3:4], torch.empty(0), data[4:]):
        norm.update(chunk)
    assert norm.count.item() == 7
    assert norm.mean.item() == pytest.approx(data.double().mean().item(), abs=1e-12)
    assert norm.var.item() == pytest.approx(data.double().var(unbiased=False).item(), abs=1e-12)
    state = RunningNormalizer(eps=0.0)
    state.load_state_dict(norm.state_dict())
    assert state(torch.tensor([35.0 / 7])).item() == pytest.approx(0.0, abs=1e-6)  # mean = 35/7 = 5


def test_running_normalizer_by_hand_min_count_and_clip():
    norm = RunningNormalizer(eps=0.0, min_count=2, clip=1.5)
    norm.update(torch.tensor([3.0]))
    assert norm(torch.tensor([7.0])).item() == 7.0  # one value seen < min_count: unchanged
    norm.update(torch.tensor([1.0, 2.0, 4.0]))
    # values 1..4: mean 2.5, population var (2.25+0.25+0.25+2.25)/4 = 1.25; (5-2.5)/sqrt(1.25) = 2.236 -> clip 1.5
    out = norm(torch.tensor([5.0, 3.0]))
    assert out.tolist() == pytest.approx([1.5, 0.5 / math.sqrt(1.25)])
    with pytest.raises(ValueError, match="RunningNormalizer"):
        RunningNormalizer(clip=0.0)


def _ranks_agree(rank: int, world: int, port: int, result) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    norm = RunningNormalizer(eps=0.0)
    norm.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]][rank]))  # rank 0 sees 1, 2; rank 1 sees 3, 4
    norm.update(torch.tensor([10.0]) if rank == 0 else torch.empty(0))  # uneven: only rank 0 has data
    result[rank] = (norm.count.item(), norm.mean.item(), norm.var.item())
    dist.destroy_process_group()


def test_running_normalizer_syncs_across_processes():
    manager = mp.Manager()
    result = manager.dict()
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ranks_agree, args=(2, port, result), nprocs=2, join=True)
    # all data 1, 2, 3, 4, 10: mean 4, population var (9+4+1+0+36)/5 = 10 on both ranks
    assert result[0] == result[1] == pytest.approx((5.0, 4.0, 10.0))


def test_shape_values_zero_off_placed():
    values = torch.tensor([[0.5, -0.5, 3.0], [0.0, 9.0, 9.0]])
    placed = torch.tensor([[True, True, False], [True, False, False]])
    shaped = shape_values(values, placed)
    # σ(0.5) = 0.6225, σ(-0.5) = 0.3775 (the paper's ±0.5 example), σ(0) = 0.5
    close(shaped, [[0.6225, 0.3775, 0.0], [0.5, 0.0, 0.0]])
    assert shaped[~placed].eq(0).all()
    # identity with scale 2, bias 1: 2·0.5+1 = 2, 2·(-0.5)+1 = 0, 2·0+1 = 1
    assert shape_values(values, placed, "identity", scale=2.0, bias=1.0).tolist() == [[2.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="shaping must be"):
        shape_values(values, placed, "tanh")


def test_aspect_reward_normalises_shapes_and_weights():
    placed = torch.tensor([[False, True, False], [True, False, False]])  # rows of lengths 3 and 1 (padding off)
    score = Score(values=torch.tensor([[0.0, 3.0, 0.0], [-1.0, 0.0, 0.0]]), placed=placed, metric=torch.zeros(2))
    scorer = StubScorer(weight=3.0, normalizer=FixedNormalizer(mean=1.0, std=2.0))
    reward = shape_aspect(score, scorer)
    # z = (3-1)/2 = 1 -> σ = 0.7311 -> ×3 = 2.1932;  z = (-1-1)/2 = -1 -> σ = 0.2689 -> ×3 = 0.8068
    close(reward, [[0.0, 2.1932, 0.0], [0.8068, 0.0, 0.0]])
    assert reward[~placed].eq(0).all()
    running = StubScorer(normalizer=RunningNormalizer(eps=0.0), shaping="identity")
    first = shape_aspect(score, running)  # placed values 3 and -1: mean 1, var 4 -> z = ±1
    close(first, [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    shape_aspect(score, running, update=False)
    assert running.normalizer.count.item() == 2  # evaluation does not feed the statistics


def test_holistic_reward_uses_oriented_metric():
    score = Score(
        values=torch.zeros(2, 1),
        placed=torch.zeros(2, 1, dtype=torch.bool),
        metric=torch.tensor([1.0, 3.0]),
        higher_is_better=False,
    )
    # oriented: -1, -3; with μ = -2, σ = 1: H = 1, -1
    assert normalize_holistic(score, FixedNormalizer(mean=-2.0, std=1.0)).tolist() == [1.0, -1.0]
    assert normalize_holistic(score, None).tolist() == [-1.0, -3.0]
