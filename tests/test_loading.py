"""Hub-or-local resolution, quantization configs and dtype names (alarm_pl.models.loading)."""

from __future__ import annotations

import time

import pytest
import torch

from alarm_pl.models import loading
from alarm_pl.models.loading import (
    HubUnavailableError,
    looks_local,
    quantization_config,
    resolve_pretrained,
    torch_dtype_from_str,
)

KEY = "model.policy.model_name_or_path"


def test_existing_local_dir_resolves_to_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "config.json").write_text("{}")  # what save_pretrained writes; without it: tests/test_bad_input
    monkeypatch.chdir(tmp_path)
    assert resolve_pretrained("./rm", KEY) == str(tmp_path / "rm")
    assert resolve_pretrained("rm", KEY) == str(tmp_path / "rm")  # a bare existing name is local, not a hub id


@pytest.mark.parametrize(
    "path", ["./missing", "/nonexistent/alarm_pl/rm", "~/alarm_pl_missing_rm", "a/b/c", "models/rm"]
)
def test_missing_local_path_names_key_and_path(tmp_path, monkeypatch, path):
    (tmp_path / "models").mkdir()  # "models/rm" is local because ./models exists
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        resolve_pretrained(path, KEY)
    assert KEY in str(err.value) and repr(path) in str(err.value)


def test_a_file_is_not_a_model_directory(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        resolve_pretrained(str(tmp_path / "weights.bin"), KEY)


@pytest.mark.parametrize(
    "name,local",
    [
        ("openbmb/UltraRM-13b", False),
        ("gpt2", False),
        ("./x", True),
        ("/x/y", True),
        ("~/x", True),
        ("a/b/c", True),
        ("x/", True),
    ],
)
def test_looks_local(name, local):
    assert looks_local(name) is local


def test_offline_hub_id_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as err:
        resolve_pretrained("alarm-pl-tests/not-cached-anywhere", KEY)
    assert time.monotonic() - start < 5.0
    message = str(err.value)
    assert "'alarm-pl-tests/not-cached-anywhere'" in message and KEY in message
    assert "HF_HUB_OFFLINE" in message and "local" in message


def test_offline_hub_id_uses_cached_snapshot(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "_cached_snapshot", lambda repo: f"/cache/{repo}/snapshot")
    assert resolve_pretrained("org/name", KEY) == "/cache/org/name/snapshot"


def test_unreachable_hub_fails_with_the_short_timeout(monkeypatch):
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    seen = {}

    def unreachable(self, repo_id, timeout=None, **kwargs):
        seen["timeout"] = timeout
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(HfApi, "model_info", unreachable)
    monkeypatch.setattr(loading, "_cached_snapshot", lambda repo: None)
    with pytest.raises(HubUnavailableError, match=r"could not be reached within 3 s.*'org/rm'.*local-dir") as err:
        resolve_pretrained("org/rm", "model.holistic.init_args.model_name_or_path", timeout=3)
    assert seen["timeout"] == 3
    assert "model.holistic.init_args.model_name_or_path" in str(err.value)
    # with a cached copy, an unreachable hub falls back to it
    monkeypatch.setattr(loading, "_cached_snapshot", lambda repo: "/cache/snap")
    assert resolve_pretrained("org/rm", KEY) == "/cache/snap"


def test_quantization_config():
    assert quantization_config(None) is None
    with pytest.raises(ValueError, match="4, 8 or None"):
        quantization_config(3)
    four = quantization_config(4, allow_cpu=True)
    assert four.load_in_4bit and four.bnb_4bit_quant_type == "nf4" and four.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config(8, allow_cpu=True).load_in_8bit


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_quantization_without_cuda_is_refused_unless_allowed():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        quantization_config(4)


def test_torch_dtype_from_str():
    assert torch_dtype_from_str("bfloat16") is torch.bfloat16
    assert torch_dtype_from_str("float16") is torch.float16
    assert torch_dtype_from_str("float32") is torch.float32
    assert torch_dtype_from_str("auto") == "auto"
    with pytest.raises(ValueError, match="bf16"):
        torch_dtype_from_str("bf16")


def test_offline_env_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert not loading.hub_offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "true")
    assert loading.hub_offline()
