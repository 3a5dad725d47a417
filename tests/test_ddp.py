"""Two CPU processes under Lightning's DDP: after PPO updates (several optimizer steps per rollout) the adapters and
value heads are identical on both ranks although each rank saw different prompts (DESIGN.md, 'Several optimizer
steps inside one training step')."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alarm_pl.data.prompts import TinyMTDataModule


def _run_two_ranks(tmp_path, unsynced: bool):
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[1]),
        "OMP_NUM_THREADS": "1",
        "ALARM_PL_TEST_UNSYNCED": "1" if unsynced else "0",
    }
    worker = Path(__file__).with_name("ddp_worker.py")
    result = subprocess.run(
        [sys.executable, str(worker), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_ranks_diverge_without_per_backward_sync(tmp_path):
    """Negative control: the check below can fail. Without the reducer preparation before each backward, only
    some backward passes are averaged and the adapters drift apart."""
    rank0, rank1 = _run_two_ranks(tmp_path, unsynced=True)
    worst = max(float((w - rank1["weights"][n]).abs().max()) for n, w in rank0["weights"].items())
    assert worst > 1e-4


@pytest.fixture(scope="module")
def synced_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return out, _run_two_ranks(out, unsynced=False)


def test_adapters_identical_across_ranks_after_updates(synced_run):
    _, (rank0, rank1) = synced_run
    assert set(rank0["prompts"]).isdisjoint(rank1["prompts"]), "ranks must see different prompts"
    changed = False
    for name, w0 in rank0["weights"].items():
        torch.testing.assert_close(w0, rank1["weights"][name], atol=1e-6, rtol=0, msg=f"{name} differs across ranks")
        changed |= bool("lora_B" in name and w0.abs().sum() > 0)
    assert changed, "the adapter never moved: no update happened"


def test_generation_file_written_once_with_every_prompt(synced_run):
    """Only rank 0 writes; the distributed sampler's padding duplicates are dropped, nothing is lost."""
    out, _ = synced_run
    files = list((out / "generations").glob("test-step*.jsonl"))
    assert len(files) == 1
    assert len(list((out / "generations").glob("test-baseline-step*.jsonl"))) == 1  # the starting policy's
    prompts = [json.loads(line)["prompt"] for line in files[0].read_text().splitlines()]
    expected = [r.prompt for r in TinyMTDataModule(num_test=7).load_split("test")]
    assert prompts == expected  # each test prompt once, in split order


def test_the_cli_releases_the_process_group_it_ran_in(tmp_path):
    """``cli_main`` ends by destroying the default process group (after a barrier): Lightning does so at exit for NCCL
    only, and a gloo group left to the interpreter's finalization aborted a finished 2-process run now and then
    (exit -6, 'terminate called without an active exception'). One process of a gloo group stands in for the ranks."""
    import torch.distributed as dist

    from alarm_pl.cli import release_process_group

    release_process_group()  # nothing to release: a no-op
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        release_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
