"""Atomic file writes: write a temp file in the same folder, fsync, then ``os.replace``.

A reader never sees a half-written file; an interrupted write leaves the old file (or nothing).
A write that fails (no space left, no permission, the folder is a file) removes its temp file,
leaves the previous file untouched and raises `OutputError` naming the file.
Files get the permissions any tool would give them (``0o666`` less the umask), not ``mkstemp``'s
private ``0o600``.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from .errors import OutputError


def describe_os_error(exc: OSError) -> str:
    """A short human reason for a failed write (``no space left on the device``, ...)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device; free some space or choose another output folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (the folder is not writable); choose another output folder"
    return exc.strerror or str(exc)


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting and restoring it; the lock keeps threads from racing)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then move the result onto ``path`` in one rename.

    Raises `OutputError` (an ``OSError``) when the file cannot be written; ``path`` is then
    exactly as before and no temp file is left behind.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~current_umask())
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OutputError:
        _discard(tmp)
        raise
    except OSError as exc:
        _discard(tmp)
        raise OutputError(f"{path}: cannot be written ({describe_os_error(exc)}); the previous file is unchanged") from exc
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(tmp: str | None) -> None:
    if tmp is not None and os.path.exists(tmp):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return write_atomic(path, write)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())
