"""A checkpoint's fingerprint: the few settings that a run loading it must share with the run that wrote it.

The module writes it into every checkpoint (``stamp``) and compares it when one is loaded (``check``): a different
module, model shape, adapter shape, reference, scorer set (with their normalisers), strategy or selection refuses
the checkpoint and names every difference; a different model *path* with the same shape, or another dtype or
quantization, only warns (a moved model directory is still the same model). Everything else (learning rate, PPO
settings, run length, decoding) may change between a run and its resume.
"""

from __future__ import annotations

from typing import Any, Callable

from alarm_pl.checkpointing.io import CheckpointError

KEY = "alarm_pl"
FORMAT = 1
"""Version of what alarm_pl adds to Lightning's checkpoint (this fingerprint, the random states, the data position)."""

SOFT = frozenset({"model", "precision"})
"""Fingerprint fields whose difference warns instead of refusing."""


def stamp(checkpoint: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Record the format and ``fingerprint`` (strings, numbers, lists and dicts only) in ``checkpoint``."""
    checkpoint[KEY] = {"format": FORMAT, "fingerprint": fingerprint}


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``field: checkpoint X, this run Y`` for every field whose value differs (missing fields read as None)."""
    return [
        f"{key}: checkpoint {saved.get(key)!r}, this run {current.get(key)!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    ]


def check(checkpoint: dict[str, Any], current: dict[str, Any], path: Any, warn: Callable[[str], None]) -> None:
    """Refuse ``checkpoint`` unless its fingerprint matches ``current`` (``SOFT`` fields only warn).

    Raises:
        CheckpointError: the checkpoint has no alarm_pl fingerprint, a newer format, or differs in a hard field.
    """
    meta = checkpoint.get(KEY)
    if not isinstance(meta, dict) or "fingerprint" not in meta:
        raise CheckpointError(
            f"checkpoint {path} was not written by this version of alarm_pl (no {KEY!r} entry): "
            f"it lacks what an exact resume needs; start a new run (from exported weights, "
            f"model.policy.adapter_path, if you want to keep them)"
        )
    if meta.get("format", 0) > FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {meta['format']}, newer than this alarm_pl's {FORMAT}; "
            f"update alarm_pl to load it"
        )
    saved = meta["fingerprint"]
    hard = differences(
        {k: v for k, v in saved.items() if k not in SOFT}, {k: v for k, v in current.items() if k not in SOFT}
    )
    if hard:
        raise CheckpointError(
            f"checkpoint {path} comes from a different configuration: "
            + "; ".join(hard)
            + ". Load it with the configuration that wrote it; to start another configuration from "
            "its weights, export them (fit --export_dir) and set model.policy.adapter_path"
        )
    soft = differences({k: saved.get(k) for k in SOFT}, {k: current.get(k) for k in SOFT})
    if soft:
        warn(f"checkpoint {path}: " + "; ".join(soft) + " (loading it anyway: the model's shape matches)")


def scorers_fingerprint(scorers: list[Any]) -> dict[str, str]:
    """Each scorer's class, weight and normaliser by name (a changed normalisation constant is a different reward)."""
    return {
        scorer.name: f"{type(scorer).__name__} weight={scorer.weight:g} shaping={scorer.shaping} "
        f"normalizer={scorer.normalizer!r}"
        for scorer in scorers
    }
