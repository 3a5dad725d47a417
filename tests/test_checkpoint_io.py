"""Checkpoint files: atomic writes that leave the previous file valid, ``weights_only`` reads, and refusals that name
the file and what is wrong (truncated, foreign, not a training checkpoint, objects beyond tensors, another
configuration)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.plugins.io import TorchCheckpointIO

from alarm_pl.checkpointing import (
    CheckpointError,
    SafeCheckpointIO,
    fingerprint,
    install_safe_checkpoint_io,
    read_checkpoint,
)
from alarm_pl.checkpointing.io import write_checkpoint
from alarm_pl.files import WriteError


def training_checkpoint(step: int = 3) -> dict:
    return {
        "state_dict": {"policy.lora_A": torch.arange(6.0).reshape(2, 3)},
        "loops": {"fit_loop": {"step": step}},
        "pytorch-lightning_version": "2.6.6",
        "global_step": step,
    }


class RunsCode:
    """Unpickling this would create ``marker``: what a malicious checkpoint could do with any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class FailsWhilePickled:
    """Pickling this fails half-way through ``torch.save`` (after the tensors before it were written): a full disk."""

    def __reduce__(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_written_checkpoint_reads_back_equal(tmp_path):
    path = tmp_path / "last.ckpt"
    write_checkpoint(training_checkpoint(), path)
    loaded = read_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["policy.lora_A"], torch.arange(6.0).reshape(2, 3))
    assert loaded["global_step"] == 3 and os.listdir(tmp_path) == ["last.ckpt"]  # no temporary file left


def test_a_failed_write_keeps_the_previous_checkpoint_and_names_the_file(tmp_path):
    path = tmp_path / "last.ckpt"
    write_checkpoint(training_checkpoint(step=3), path)
    broken = {**training_checkpoint(step=4), "extra": FailsWhilePickled()}
    with pytest.raises(WriteError) as caught:
        write_checkpoint(broken, path)
    assert str(path) in str(caught.value) and "disk is full" in str(caught.value)
    assert read_checkpoint(path)["global_step"] == 3  # the previous file, intact
    assert os.listdir(tmp_path) == ["last.ckpt"]  # the temporary file is gone


def test_a_truncated_checkpoint_is_refused_with_its_path(tmp_path):
    path = tmp_path / "epoch=0-step=3.ckpt"
    write_checkpoint(training_checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch file") as caught:
        read_checkpoint(path)
    assert str(path) in str(caught.value)


RANDOM_BYTES = bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).tolist())


@pytest.mark.parametrize(
    "content",
    [b"", b"step,reward\n1,0.5\n", bytes(range(256)) * 4, RANDOM_BYTES],
    ids=["empty", "csv", "bytes", "random"],
)
def test_a_foreign_file_is_refused(tmp_path, content):
    path = tmp_path / "metrics.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch file") as caught:
        read_checkpoint(path)
    assert str(path) in str(caught.value)


def test_a_torch_file_that_is_not_a_training_checkpoint_is_refused(tmp_path):
    path = tmp_path / "adapter.bin"
    torch.save({"lora_A": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"not a training checkpoint \(no \['state_dict', 'loops'"):
        read_checkpoint(path)


def test_objects_beyond_tensors_are_never_unpickled(tmp_path):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.ckpt"
    torch.save({**training_checkpoint(), "payload": RunsCode(marker)}, path)
    with pytest.raises(
        CheckpointError,
        match=r"beyond tensors and plain containers \(Unsupported global: GLOBAL getattr was not an allowed global by default\.\); refusing to unpickle it",  # noqa: E501
    ):
        read_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="weights_only=False is refused"):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


def test_missing_path_and_directory_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nothing.ckpt"):
        read_checkpoint(tmp_path / "nothing.ckpt")
    with pytest.raises(CheckpointError, match="is a directory"):
        read_checkpoint(tmp_path)


def test_the_trainer_gets_the_safe_io_unless_another_plugin_was_chosen():
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert type(trainer.strategy.checkpoint_io) is TorchCheckpointIO
    install_safe_checkpoint_io(trainer)
    assert isinstance(trainer.strategy.checkpoint_io, SafeCheckpointIO)

    class OwnIO(TorchCheckpointIO):
        pass

    own = Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, plugins=[OwnIO()]
    )
    install_safe_checkpoint_io(own)
    assert type(own.strategy.checkpoint_io) is OwnIO


# ---------------------------------------------------------------------- fingerprint
CURRENT = {
    "module": "ALaRMModule",
    "model": "tiny:mt-seq2seq",
    "adapter": "LoRA r=16 alpha=32 targets=['q', 'v']",
    "precision": "float32, no quantization bits",
    "strategy": "hierarchical",
}


def stamped(**changes) -> dict:
    checkpoint = training_checkpoint()
    fingerprint.stamp(checkpoint, {**CURRENT, **changes})
    return checkpoint


def test_a_matching_fingerprint_loads_silently():
    warnings: list[str] = []
    fingerprint.check(stamped(), dict(CURRENT), "run/last.ckpt", warnings.append)
    assert warnings == []


def test_a_different_configuration_is_refused_naming_every_difference():
    checkpoint = stamped(adapter="LoRA r=8 alpha=16 targets=['q', 'v']", strategy="weighted_sum")
    with pytest.raises(CheckpointError) as caught:
        fingerprint.check(checkpoint, dict(CURRENT), "run/last.ckpt", print)
    message = str(caught.value)
    assert "run/last.ckpt comes from a different configuration" in message
    assert "adapter: checkpoint \"LoRA r=8 alpha=16 targets=['q', 'v']\", this run \"LoRA r=16" in message
    assert "strategy: checkpoint 'weighted_sum', this run 'hierarchical'" in message
    assert "model:" not in message  # equal fields are not listed


def test_a_moved_model_or_another_precision_only_warns():
    warnings: list[str] = []
    fingerprint.check(stamped(model="/old/place/tiny"), dict(CURRENT), "last.ckpt", warnings.append)
    assert len(warnings) == 1 and "model: checkpoint '/old/place/tiny', this run 'tiny:mt-seq2seq'" in warnings[0]


def test_a_checkpoint_without_fingerprint_or_from_a_newer_format_is_refused():
    with pytest.raises(CheckpointError, match="not written by this version of alarm_pl"):
        fingerprint.check(training_checkpoint(), dict(CURRENT), "lightning.ckpt", print)
    newer = stamped()
    newer[fingerprint.KEY]["format"] = fingerprint.FORMAT + 1
    with pytest.raises(CheckpointError, match="newer than this alarm_pl's"):
        fingerprint.check(newer, dict(CURRENT), "new.ckpt", print)
