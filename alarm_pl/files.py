"""Files written atomically: a temporary file in the target's directory, flushed and fsynced, then renamed over the
target (and the directory fsynced), so that a reader — or a resumed run — never sees half a file, and a crash or a
full disk during the write leaves the previous version intact. Used for checkpoints, generation files and reports.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union

from alarm_pl.faults import describe_write_error

PathLike = Union[str, "os.PathLike[str]"]

TEMPORARY_SUFFIX = ".tmp"
"""Suffix of the temporary files; a leftover one (a process killed while writing) is never read as the real file."""


class WriteError(OSError):
    """A file could not be written (disk full, no permission, …); the message names it. ``errno`` and ``filename``
    are the cause's errno and the target file."""

    def __init__(self, message: str, errno: Optional[int] = None, filename: Optional[str] = None) -> None:
        super().__init__(message)
        self.message, self.errno, self.filename = message, errno, filename

    def __str__(self) -> str:  # OSError's own reads "[Errno N] None: 'file'" once errno is set
        return self.message


@contextlib.contextmanager
def atomic_writer(path: PathLike) -> Iterator[BinaryIO]:
    """Open a temporary binary file next to ``path``; on success flush, fsync and ``os.replace`` it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Raises:
        WriteError: an ``OSError`` while creating, writing or renaming (the message names ``path``).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX, dir=target.parent)
    except OSError as err:
        raise _write_error(target, err) from err
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise _write_error(target, err) from err
        raise
    _fsync_directory(target.parent)


def _write_error(path: Path, err: OSError) -> WriteError:
    return WriteError(describe_write_error(path, err), err.errno, str(path))


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
