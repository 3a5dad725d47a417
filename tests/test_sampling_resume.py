"""The training orders resume exactly (data/sampling.py): a ``StatefulDataLoader`` stopped after k batches, saved,
and restored in a new loader continues with the batches an uninterrupted loader yields, for k inside an epoch, at an
epoch's end and in a later epoch; DDP shards stay disjoint; length-grouped (SFT) batches resume too."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import RandomSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from alarm_pl.data.sampling import LengthGroupedBatchSampler, ShardedRandomSampler

pytestmark = pytest.mark.filterwarnings("ignore:.*set_vital")  # torchdata 0.11 on torch 2.13 (data/prompts.py)

SIZE, BATCH = 10, 3  # 3 batches an epoch (drop_last), mixed with a partial one dropped


def sharded_loader(seed: int = 0, replicas: int = 1, rank: int = 0, tell_batch: bool = True) -> StatefulDataLoader:
    generator = torch.Generator().manual_seed(seed)
    sampler = ShardedRandomSampler(
        SIZE, generator, num_replicas=replicas, rank=rank, drop_last_batch_size=BATCH if tell_batch else None
    )
    return StatefulDataLoader(list(range(SIZE)), batch_size=BATCH, sampler=sampler, drop_last=True)


def grouped_loader(seed: int = 0) -> StatefulDataLoader:
    order = torch.Generator().manual_seed(seed)
    lengths = [(7 * i) % 11 for i in range(SIZE)]
    batches = LengthGroupedBatchSampler(
        RandomSampler(range(SIZE), generator=order),
        BATCH,
        drop_last=True,
        lengths=lengths,
        group_size=2,
        generator=order,
    )
    return StatefulDataLoader(list(range(SIZE)), batch_sampler=batches)


def epochs(loader: StatefulDataLoader, n: int) -> list[list[int]]:
    return [batch.tolist() for _ in range(n) for batch in loader]


def resumed(make, k: int, n_epochs: int) -> list[list[int]]:
    """Batches of ``n_epochs`` epochs from a loader stopped after ``k`` batches and continued by a fresh one."""
    first = make()
    seen, iterator = [], iter(first)
    per_epoch = len(first)
    for index in range(k):
        if index and index % per_epoch == 0:
            iterator = iter(first)
        seen.append(next(iterator).tolist())
    if k % per_epoch == 0:  # Lightning saves at an epoch's end before it starts the next iterator
        with pytest.raises(StopIteration):
            next(iterator)
    state = first.state_dict()
    second = make()
    second.load_state_dict(state)
    rest = [batch.tolist() for batch in second]  # the rest of the epoch k falls in (empty at an epoch's end)
    done = len(seen) + len(rest)
    rest += epochs(second, n_epochs - done // per_epoch)
    return seen + rest


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 7])
@pytest.mark.parametrize("make", [sharded_loader, grouped_loader], ids=["sharded", "grouped"])
def test_a_restored_loader_continues_the_uninterrupted_order(make, k):
    uninterrupted = epochs(make(), 3)
    assert len(uninterrupted) == 9 and uninterrupted[:3] != uninterrupted[3:6]  # a new order every epoch
    assert resumed(make, k, 3) == uninterrupted


def test_the_order_ignores_the_global_generator_and_follows_the_seed():
    torch.manual_seed(1)
    a = epochs(sharded_loader(seed=5), 2)
    torch.manual_seed(2)
    torch.rand(100)
    assert epochs(sharded_loader(seed=5), 2) == a != epochs(sharded_loader(seed=6), 2)


def test_ddp_shards_are_disjoint_and_cover_the_padded_order():
    shards = [
        list(ShardedRandomSampler(SIZE, torch.Generator().manual_seed(0), num_replicas=4, rank=r)) for r in range(4)
    ]
    assert [len(s) for s in shards] == [3] * 4
    flat = sorted(i for s in shards for i in s)
    assert set(flat) == set(range(SIZE)) and len(flat) == 12  # padded with 2 repeated indices, as DistributedSampler


@pytest.mark.parametrize("make", [sharded_loader, grouped_loader], ids=["sharded", "grouped"])
def test_a_loader_saved_right_after_its_last_full_batch_resumes_into_the_next_epoch(make):
    """RunCheckpoint saves when a rollout ends, before the loader is asked for the batch that would end its epoch: the
    sampler has yielded the 9 items of the 3 full batches, not the 10th that drop_last discards. Restored, the loader
    must start the next epoch at once; an empty first iteration makes Lightning count an extra epoch (found by
    tests/test_sft_resume.py: epochs 0, 0, 2, 2, … after resuming)."""
    uninterrupted = epochs(make(), 2)
    first = make()
    iterator = iter(first)
    seen = [next(iterator).tolist() for _ in range(3)]  # the epoch's full batches; its iterator not exhausted
    second = make()
    second.load_state_dict(first.state_dict())
    assert seen + epochs(second, 1) == uninterrupted


def test_without_the_batch_size_the_sampler_cannot_tell_the_dropped_items_from_unseen_ones():
    first = sharded_loader(tell_batch=False)
    iterator = iter(first)
    for _ in range(3):
        next(iterator)
    second = sharded_loader(tell_batch=False)
    second.load_state_dict(first.state_dict())
    assert epochs(second, 1) == []  # the empty epoch drop_last_batch_size prevents
