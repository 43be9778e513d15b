"""An exclusive inter-process lock whose lock file does not outlive it.

`TidyLock` locks ``path`` with ``flock`` like ``filelock.FileLock`` does, and removes the
lock file when it lets go, so no ``.results.json.lock`` stays beside a results file. Removing a
lock file others may be waiting on is safe because every holder checks, once it has the lock, that
the file it locked is still the one at ``path``; a waiter that locked a removed file lets go and
tries again on the new one. Where ``fcntl`` does not exist (Windows) it is ``filelock.FileLock``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from filelock import FileLock, Timeout

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Seconds between tries while another process holds the lock.
POLL_SECONDS = 0.05


class TidyLock:
    """``with TidyLock(path, timeout):`` holds the lock on ``path`` (created when missing, removed on
    release); raises ``filelock.Timeout`` after ``timeout`` seconds (default: wait for ever). Not
    re-entrant: a holder must not take the same lock again."""

    def __init__(self, path: str | os.PathLike, timeout: float = -1) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._fd: int | None = None

    def acquire(self) -> None:
        deadline = None if self.timeout < 0 else time.monotonic() + self.timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if deadline is not None and time.monotonic() >= deadline:
                            raise Timeout(str(self.path)) from None
                        time.sleep(POLL_SECONDS)
                locked = os.fstat(fd)
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:
                    current = None
                if current is not None and (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino):
                    self._fd = fd
                    return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the holder before us removed this file: lock the one at path now

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # still holding it: a waiter sees the file is gone and retries
        except OSError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "TidyLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def tidy_lock(path: str | os.PathLike, timeout: float = -1) -> "TidyLock | FileLock":
    """A `TidyLock` on ``path``, or ``filelock.FileLock`` where ``flock`` does not exist."""
    if fcntl is None:  # pragma: no cover - Windows
        return FileLock(str(path), timeout=timeout)
    return TidyLock(path, timeout)
