"""The generation file: one JSON line per prompt, shared by the trainer (writer) and the evaluation suite (reader).

A line holds the prompt, the policy's generation, the optional reference, the normalised holistic reward H (and the
raw one), whether the response is degenerate, every aspect's per-response summary metric with its direction, the
response length in tokens and the run's identity (config hash, checkpoint, decoding settings, step).

``holistic`` is the reward model's normalised score, *without* the −10 training penalty of degenerate (empty)
responses, as in the authors' test files (``holistic_reward`` in ``MT/train_ppo.py`` / ``long-form-QA/train_ppo.py``
``test``, which apply no penalty); win rates compare it. The penalty stays visible as ``degenerate: true``. Files
written before that field existed read as ``degenerate: false`` and carry the penalty in ``holistic``.

Non-finite floats are written as ``null`` so that the file stays strict JSON; ``null`` reads back as NaN.

Every file of the evaluation suite is written atomically (``alarm_pl/files.py``): a temporary file in the same
directory, flushed and fsynced, then ``os.replace``d over the target, so a reader never sees a half-written file and a
failed write (a full disk) leaves the previous file intact; the error names the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Optional, Union

from alarm_pl.files import atomic_writer  # noqa: F401 (re-exported: the evaluation suite writes through it)

PathLike = Union[str, "os.PathLike[str]"]

REQUIRED_FIELDS = ("prompt", "generation", "holistic", "length")


@dataclass(frozen=True, kw_only=True)
class GenerationRecord:
    """One prompt's generation and its scores (keyword-only; ``prompt``, ``generation``, ``holistic`` and ``length``
    are required).

    Attributes:
        prompt: the policy prompt (also the instruction shown to an LLM judge); records of two runs match by it.
        generation: the decoded response.
        reference: the reference output (MT) or ``None``.
        holistic: H, the normalised holistic reward (higher is better), without the degenerate penalty.
        holistic_raw: the raw reward-model output before normalisation, or ``None``.
        degenerate: the response is degenerate (empty): training gave it the penalty H instead of ``holistic``.
        aspects: each aspect's per-response summary metric in its own units (e.g. grammar error rate).
        aspect_higher_is_better: direction of each metric in ``aspects`` (False for error rates).
        length: response length in policy tokens.
        run: the run's identity: config hash, checkpoint, decoding settings, step.
    """

    prompt: str
    generation: str
    reference: Optional[str] = None
    holistic: float
    holistic_raw: Optional[float] = None
    degenerate: bool = False
    aspects: dict[str, float] = field(default_factory=dict)
    aspect_higher_is_better: dict[str, bool] = field(default_factory=dict)
    length: int
    run: dict = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as a strict-JSON dict (non-finite floats become ``None``)."""
        return {
            "prompt": self.prompt,
            "generation": self.generation,
            "reference": self.reference,
            "holistic": _finite_or_none(self.holistic),
            "holistic_raw": _finite_or_none(self.holistic_raw),
            "degenerate": bool(self.degenerate),
            "aspects": {name: _finite_or_none(value) for name, value in self.aspects.items()},
            "aspect_higher_is_better": dict(self.aspect_higher_is_better),
            "length": int(self.length),
            "run": self.run,
        }

    @staticmethod
    def from_json(obj: Any, where: str) -> "GenerationRecord":
        """Build a record from a parsed JSON line.

        Args:
            obj: the parsed line.
            where: ``file:line`` for error messages.

        Raises:
            ValueError: naming ``where`` and the field, when a required field is missing or has the wrong type.
        """
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        missing = [name for name in REQUIRED_FIELDS if name not in obj]
        if missing:
            raise ValueError(
                f"{where}: missing required field(s) {missing}; a generation record needs {list(REQUIRED_FIELDS)}"
            )
        aspects = _typed(obj, "aspects", dict, where, default={})
        directions = _typed(obj, "aspect_higher_is_better", dict, where, default={})
        return GenerationRecord(
            prompt=_typed(obj, "prompt", str, where),
            generation=_typed(obj, "generation", str, where),
            reference=_typed(obj, "reference", str, where, default=None),
            holistic=_number(obj.get("holistic"), "holistic", where),
            holistic_raw=None
            if obj.get("holistic_raw") is None
            else _number(obj["holistic_raw"], "holistic_raw", where),
            degenerate=_boolean(obj.get("degenerate", False), "degenerate", where),
            aspects={str(k): _number(v, f"aspects.{k}", where) for k, v in aspects.items()},
            aspect_higher_is_better={
                str(k): _boolean(v, f"aspect_higher_is_better.{k}", where) for k, v in directions.items()
            },
            length=int(_number(obj["length"], "length", where)),
            run=_typed(obj, "run", dict, where, default={}),
        )


def _finite_or_none(value: Optional[float]) -> Optional[float]:
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _typed(obj: dict, name: str, kind: type, where: str, default: Any = ...) -> Any:
    """``obj[name]`` checked to be a ``kind``; ``default`` when absent or null (required when no default)."""
    value = obj.get(name)
    if value is None:
        if default is ...:
            raise ValueError(f"{where}: field {name!r} is null; expected {kind.__name__}")
        return default
    if not isinstance(value, kind):
        raise ValueError(f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _number(value: Any, name: str, where: str) -> float:
    """A JSON number as float; ``null`` reads as NaN (a non-finite value written by ``to_json``)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: field {name!r} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _boolean(value: Any, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: field {name!r} must be true or false, got {value!r}")
    return value


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """A temporary sibling directory to fill; on success it replaces ``path`` (a reader never sees half of it)."""
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent)
    try:
        yield tmp
        if target.exists():
            old = tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent)
            os.replace(target, os.path.join(old, "previous"))
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_writer(path) as handle:
        handle.write(text.encode("utf-8"))


def write_bytes_atomic(path: PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Let ``write(handle)`` fill a binary file that lands on ``path`` atomically (e.g. a matplotlib ``savefig``)."""
    with atomic_writer(path) as handle:
        write(handle)


def write_generations(path: PathLike, records: Iterable[GenerationRecord]) -> None:
    """Write generation records as JSON Lines, atomically.

    Args:
        path: the target file (its directory is created).
        records: the records, one line each, in order.
    """
    lines = [json.dumps(record.to_json(), ensure_ascii=False, allow_nan=False) for record in records]
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def read_generations(path: PathLike) -> list[GenerationRecord]:
    """Read a generation file written by ``write_generations`` (or by hand with at least the required fields).

    Args:
        path: a JSON Lines file; blank lines are skipped.

    Returns:
        The records in file order.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming ``file:line`` for malformed JSON or a missing / mistyped field.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"generation file not found: {path}")
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line.rstrip("\r\n"))  # an error at the end of the line: its column, not 1
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: malformed JSON ({err.msg} at column {err.colno})") from None
            records.append(GenerationRecord.from_json(obj, where))
    return records


def run_identity(
    config: Any, checkpoint: Optional[str], decoding: dict[str, Any], step: Optional[int], stage: Optional[str] = None
) -> dict[str, Any]:
    """The ``run`` field of a generation record.

    Args:
        config: the run's JSON-able configuration (hashed, not stored; see ``jsonable``).
        checkpoint: the checkpoint path the generations come from, or ``None`` for the initial policy.
        decoding: the generation settings (``do_sample``, ``top_k``, ``top_p``, ``max_new_tokens``, ...).
        step: the global step, or ``None``.
        stage: ``val`` or ``test`` for files written during training or testing; left out when ``None``.
    """
    identity = {"config_hash": config_hash(config), "checkpoint": checkpoint, "decoding": dict(decoding), "step": step}
    if stage is not None:
        identity["stage"] = stage
    return identity


def jsonable(obj: Any) -> Any:
    """A JSON-able view of a configuration: mappings and sequences recursively, other objects as their ``repr``.

    Args:
        obj: e.g. a module's hyper-parameters (dataclasses and scorer objects included).
    """
    if isinstance(obj, dict) or hasattr(obj, "items"):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def config_hash(obj: Any, length: int = 12) -> str:
    """A stable short hash of a JSON-able configuration (key order does not matter).

    Args:
        obj: dicts, lists, strings, numbers, booleans and ``None``.
        length: number of hex digits kept of the sha256.

    Raises:
        TypeError: when ``obj`` holds something that is not JSON-able (the message names its type).
    """
    try:
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"config_hash: the configuration is not JSON-able ({err})") from None
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]
