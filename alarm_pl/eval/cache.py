"""The judge cache: one JSON line per judge reply, appended and flushed the moment the reply arrives.

A reply is keyed by ``(model, prompt-template hash, instruction, output_1, output_2)``; a resumed run loads the file and
never asks again for a cached key, so an interrupted or failed run loses no paid reply and pays for none twice.
Answered replies are cached whether parseable or not (asking again at temperature 0 would pay for the same reply);
requests that failed (connection, timeout, error status after the retries) are not: a later run asks them again.

A process killed in the middle of a write can leave a partial last line; loading drops it (it was never a complete
judgment) and truncates the file there, so that later appends stay line-aligned. The API key is never part of an entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)


def judgment_key(model: str, template_hash: str, instruction: str, output_1: str, output_2: str) -> str:
    """sha256 of the request's identity; ``output_1`` is the one shown as "Output (a)"."""
    payload = json.dumps([model, template_hash, instruction, output_1, output_2], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgmentCache:
    """An append-only JSONL cache of judge replies, safe to share between threads.

    Args:
        path: the cache file; created on the first append, loaded when it exists.

    Raises:
        ValueError: naming ``file:line`` when a complete line is not a JSON object with a ``key``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        complete, newline, partial = data.rpartition(b"\n")
        if partial.strip():
            log.warning(
                "%s: dropping a partial last line (%d bytes) left by an interrupted run", self.path, len(partial)
            )
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete) + len(newline))
        for number, line in enumerate(complete.decode("utf-8").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{self.path}:{number}: malformed cache line ({err.msg}); remove the line or the file to ask again"
                ) from None
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise ValueError(f"{self.path}:{number}: a cache entry must be a JSON object with a 'key'")
            self._entries[entry["key"]] = entry

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Optional[dict[str, Any]]:
        """The cached entry for ``key`` or ``None``."""
        return self._entries.get(key)

    def append(self, entry: dict[str, Any]) -> None:
        """Add ``entry`` (with a ``key``) to memory and to the file: one line, flushed and fsynced."""
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._entries[entry["key"]] = entry
