"""Model references, quantization and dtype options — failing fast and clearly.

``resolve_model_reference`` turns every model reference of a configuration into something ``from_pretrained`` loads:
a hub id, a local directory, a ``tiny:<name>`` asset (``assets/tiny.py``) or ``dummy:<architecture>`` weights
(``assets/dummy.py``: the real architecture, seeded random weights, optionally shrunk by ``dummy_overrides``).
``resolve_pretrained``, its hub-or-local part, makes a wrong path or an unreachable hub surface within seconds,
naming the config key, instead of as a long retry loop deep inside ``huggingface_hub`` (whose file download retries
for up to a minute when no cached copy exists).

Quantization (what works where, checked with bitsandbytes 0.50.2 / transformers 5.24 / torch 2.13, CPU only):
bitsandbytes' 8-bit (LLM.int8) and 4-bit NF4 layers load and run on CPU, slowly; 4-bit on CPU fails for layers
narrower than the 64-element quantization block (a 32-wide toy model raises inside bitsandbytes), 64 and wider
work. The paper's 13B reward model is meant to be quantized on a GPU, so ``quantization_config`` refuses to
quantize without CUDA unless ``allow_cpu=True`` is passed on purpose: a reward-model scorer's
``allow_cpu_quantization: true`` (the CPU smoke overlays ``configs/smoke/*_cpu.yaml`` and tests).
"""

from __future__ import annotations

import importlib.util
import os
import re
from typing import Any, Mapping, Optional, Union

import torch

DEFAULT_HUB_TIMEOUT_S = 5.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_TRUE = {"1", "true", "yes", "on"}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HubUnavailableError(ConnectionError):
    """A hub model id could not be resolved (offline mode, network failure, unknown or gated repository)."""


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value (read now, not at import)."""
    return any(os.environ.get(key, "").strip().lower() in _TRUE for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def looks_local(name_or_path: str) -> bool:
    """Whether ``name_or_path`` is meant as a local path rather than a hub id ``org/name``.

    It is local when it starts with ``/``, ``.`` or ``~``, has more than one ``/`` or a backslash, ends with ``/``,
    or its first component is an existing local directory (``models/rm`` when ``./models`` exists).
    """
    if name_or_path.startswith(("/", ".", "~")) or name_or_path.endswith("/") or "\\" in name_or_path:
        return True
    if name_or_path.count("/") > 1:
        return True
    head = name_or_path.split("/", 1)[0]
    return "/" in name_or_path and os.path.isdir(head)


def resolve_model_reference(
    reference: str,
    what: str,
    head: str = "lm",
    dummy_overrides: Optional[Mapping[str, Any]] = None,
    device: Optional[str] = None,
) -> str:
    """Resolve any model reference of a configuration to a ``from_pretrained`` argument.

    Args:
        reference: ``tiny:<name>``, ``dummy:<architecture or config path>``, a local directory or a hub id.
        what: the config key it came from, for error messages.
        head: what will be loaded: ``lm`` (a policy), ``sequence`` or ``token`` (reward-model heads); dummy
            checkpoints are written with that head.
        dummy_overrides: config.json keys replaced in a ``dummy:`` architecture (only allowed with ``dummy:``).
        device: where the model will be loaded (a full-size large dummy is refused on ``cpu``).

    Returns:
        A local directory (tiny and dummy assets are built on first use) or what ``resolve_pretrained`` returns.

    Raises:
        ValueError: ``dummy_overrides`` given with a reference that is not ``dummy:``; see also the builders.
    """
    from alarm_pl.assets.dummy import DUMMY_SCHEME, ensure_dummy_checkpoint
    from alarm_pl.assets.tiny import TINY_SCHEME, ensure_tiny_asset

    if reference.startswith(DUMMY_SCHEME):
        return str(ensure_dummy_checkpoint(reference, what, head, dummy_overrides, device))
    if dummy_overrides:
        raise ValueError(
            f"{what}: dummy_overrides {dict(dummy_overrides)} only apply to 'dummy:' references, not to "
            f"{reference!r}; remove them or use dummy:<architecture>"
        )
    if reference.startswith(TINY_SCHEME):
        return str(ensure_tiny_asset(reference[len(TINY_SCHEME) :], what))
    return resolve_pretrained(reference, what)


def resolve_pretrained(
    name_or_path: str, what: str, timeout: float = DEFAULT_HUB_TIMEOUT_S, marker: str = "config.json"
) -> str:
    """Resolve a ``from_pretrained`` argument to something that will load, or fail within seconds.

    Args:
        name_or_path: a local directory saved with ``save_pretrained`` or a hub id (``org/name``).
        what: the config key it came from (e.g. ``model.policy.model_name_or_path``), used in error messages.
        timeout: seconds allowed for the one hub request that checks a hub id.
        marker: the file a local directory must hold (``adapter_config.json`` for a LoRA adapter).

    Returns:
        The absolute local directory, the hub id (hub reachable), or the cached snapshot directory of the hub id
        (offline, or hub unreachable, with a cached copy).

    Raises:
        FileNotFoundError: a local path that does not exist, is not a directory or lacks ``marker``.
        HubUnavailableError: a hub id that cannot be resolved; the message names the id, ``what`` and the fix.
    """
    if not name_or_path or not name_or_path.strip():
        raise FileNotFoundError(f"{what}: empty model name or path; give a local directory or a hub id 'org/name'")
    expanded = os.path.abspath(os.path.expanduser(name_or_path))
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, marker)):
            raise FileNotFoundError(
                f"{what}: local directory {name_or_path!r} ({expanded}) has no {marker}; it must be a directory "
                f"written by save_pretrained"
            )
        return expanded
    if looks_local(name_or_path) or os.path.exists(expanded) or not _HUB_ID.match(name_or_path):
        detail = "is not a directory" if os.path.exists(expanded) else "does not exist"
        raise FileNotFoundError(
            f"{what}: local path {name_or_path!r} ({expanded}) {detail}; it must be a directory written by "
            f"save_pretrained (config.json, weights, tokenizer files)"
        )
    return _resolve_hub_id(name_or_path, what, timeout)


def _cached_snapshot(repo_id: str) -> Optional[str]:
    """The local snapshot directory of ``repo_id`` in the hub cache, or None when nothing is cached."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not usable from the cache"
        return None


def _resolve_hub_id(repo_id: str, what: str, timeout: float) -> str:
    """Check a hub id with one short request (or the cache when offline); see ``resolve_pretrained``."""
    fix = (
        "download it on a machine with network access (e.g. `hf download {id} --local-dir DIR`) and set {what} to DIR"
    ).format(id=repo_id, what=what)
    if hub_offline():
        cached = _cached_snapshot(repo_id)
        if cached is not None:
            return cached
        raise HubUnavailableError(
            f"{what}: hub model {repo_id!r} is not in the local cache and HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is "
            f"set, so it cannot be downloaded; {fix}, or unset HF_HUB_OFFLINE to download it"
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=timeout)
        return repo_id
    except GatedRepoError as err:
        raise HubUnavailableError(
            f"{what}: hub model {repo_id!r} is gated; accept its licence on the hub and log in "
            f"(`hf auth login` or HF_TOKEN), or {fix}"
        ) from err
    except RepositoryNotFoundError as err:
        raise HubUnavailableError(
            f"{what}: hub model {repo_id!r} does not exist (or is private and no token was given); check the id "
            f"or give a local directory"
        ) from err
    except Exception as err:  # noqa: BLE001 - network errors come in many types (httpx, ssl, socket)
        cached = _cached_snapshot(repo_id)
        if cached is not None:
            return cached
        raise HubUnavailableError(
            f"{what}: the hub could not be reached within {timeout:g} s to resolve {repo_id!r} "
            f"({type(err).__name__}: {err}); {fix}"
        ) from err


def quantization_config(
    bits: Optional[int], allow_cpu: bool = False, compute_dtype: torch.dtype = torch.bfloat16
) -> "Optional[object]":
    """A ``BitsAndBytesConfig`` for ``bits`` (4: NF4 with double quantization, 8: LLM.int8), or None.

    Args:
        bits: 4, 8 or None (no quantization).
        allow_cpu: quantize even without CUDA (bitsandbytes has CPU kernels, slow: CPU smoke runs and tests).
        compute_dtype: the 4-bit compute dtype (bf16, as for QLoRA).

    Raises:
        ValueError: ``bits`` is not 4, 8 or None.
        RuntimeError: quantization requested without CUDA and without ``allow_cpu``, or bitsandbytes missing.
    """
    if bits is None:
        return None
    if bits not in (4, 8):
        raise ValueError(f"quantization bits must be 4, 8 or None, got {bits!r}")
    if not torch.cuda.is_available() and not allow_cpu:
        raise RuntimeError(
            f"{bits}-bit quantization was requested but CUDA is not available; set the quantization bits to null "
            f"to load the model unquantized on this machine, or (reward-model scorers) set "
            f"allow_cpu_quantization: true to use bitsandbytes' (slow) CPU kernels on purpose, as "
            f"configs/smoke/*_cpu.yaml do"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError(f"{bits}-bit quantization needs bitsandbytes: pip install 'bitsandbytes>=0.43'")
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def torch_dtype_from_str(name: str) -> Union[torch.dtype, str]:
    """``"float32" | "bfloat16" | "float16"`` → the torch dtype; ``"auto"`` → ``"auto"`` (the checkpoint's dtype).

    Raises:
        ValueError: any other name (the message lists the accepted ones).
    """
    if name == "auto":
        return "auto"
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES) + ['auto']}, got {name!r}")
    return _DTYPES[name]
