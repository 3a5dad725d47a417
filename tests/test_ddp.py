"""Two CPU processes under Lightning's DDP: after PPO updates (several optimizer steps per rollout) the adapters and
value heads are identical on both ranks although each rank saw different prompts (DESIGN.md, 'Several optimizer
steps inside one training step')."""

import os
import subprocess
import sys
from pathlib import Path

import torch


def _run_two_ranks(tmp_path, unsynced: bool):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1",
           "ALARM_PL_TEST_UNSYNCED": "1" if unsynced else "0"}
    worker = Path(__file__).with_name("ddp_worker.py")
    result = subprocess.run([sys.executable, str(worker), str(tmp_path)], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_ranks_diverge_without_per_backward_sync(tmp_path):
    """Negative control: the check below can fail. Without the reducer preparation before each backward, only
    some backward passes are averaged and the adapters drift apart."""
    rank0, rank1 = _run_two_ranks(tmp_path, unsynced=True)
    worst = max(float((w - rank1["weights"][n]).abs().max()) for n, w in rank0["weights"].items())
    assert worst > 1e-4


def test_adapters_identical_across_ranks_after_updates(tmp_path):
    rank0, rank1 = _run_two_ranks(tmp_path, unsynced=False)
    assert set(rank0["prompts"]).isdisjoint(rank1["prompts"]), "ranks must see different prompts"
    changed = False
    for name, w0 in rank0["weights"].items():
        torch.testing.assert_close(w0, rank1["weights"][name], atol=1e-6, rtol=0, msg=f"{name} differs across ranks")
        changed |= bool("lora_B" in name and w0.abs().sum() > 0)
    assert changed, "the adapter never moved: no update happened"
