"""``results.json``: a JSON list of run records, appended atomically under a file lock.

Each append takes an exclusive lock (``.results.json.lock`` beside the file, via ``filelock``),
reads the records, adds the new one, writes everything to a temp file and renames it over the old
file. Several processes appending to one file (two ``mmalign benchmark`` runs with the same
``--out``, a sweep's workers, parallel ``mmalign eval``) therefore lose no record; a process killed
at any moment leaves either the previous complete file or the new one (the kernel releases its
lock). ``--resume`` skips runs whose key is already recorded.

A file that is not a list of records, or whose records hold values of the wrong type, is refused
with a message naming the file, the record and the key; it is never overwritten.
"""

from __future__ import annotations

import contextlib

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

from ..atomic import write_json_atomic
from ..errors import DataError, OutputError
from ..lockfile import TidyLock, tidy_lock


#: Seconds a writer waits for another writer's lock before giving up (default 600).
LOCK_TIMEOUT = 600.0

_TEXT, _INT, _BOOL, _NUMBER, _SECONDS = "a string", "an integer", "true or false", "a finite number", "an object of seconds"
#: The type every known field must have when present (other fields are free).
FIELD_TYPES: dict[str, str] = {
    **dict.fromkeys(("dataset", "setting", "side_info", "reparameterization", "policy", "engine", "precision"), _TEXT),
    **dict.fromkeys(("shots", "seed", "epochs_vae", "classifier_epochs"), _INT),
    "synthetic": _BOOL,
    **dict.fromkeys(("S", "U", "H", "top1"), _NUMBER),
    "seconds": _SECONDS,
}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fits(value: Any, expected: str) -> bool:
    if expected == _TEXT:
        return isinstance(value, str)
    if expected == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == _BOOL:
        return isinstance(value, bool)
    if expected == _NUMBER:
        return _finite(value)
    return isinstance(value, dict) and all(isinstance(k, str) and _finite(v) for k, v in value.items())


def record_problem(record: Any) -> str | None:
    """What is wrong with one record (``None`` when it is fine): not an object, or a known key
    (`FIELD_TYPES`) holding a value of the wrong type or a non-finite number."""
    if not isinstance(record, dict):
        return f"expected an object, got {type(record).__name__}"
    for key, expected in FIELD_TYPES.items():
        if key in record and not _fits(record[key], expected):
            return f"key {key!r} must be {expected}, got {json.dumps(record[key], default=str)[:40]}"
    return None


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The records of ``path`` (``[]`` when it does not exist); raises `DataError` naming
    the file (and record and key) when it is not a list of well-typed records."""
    path = Path(path)
    if not path.exists():
        return []
    hint = "move it away or write elsewhere (it is not overwritten)"
    try:
        records = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a valid results file ({exc}); {hint}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); {hint}") from None
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}; {hint}")
    for i, record in enumerate(records):
        problem = record_problem(record)
        if problem:
            raise DataError(f"{path}: record {i}: {problem}; {hint}")
    return records


def results_lock(path: str | Path) -> TidyLock | FileLock:
    """The lock every writer of ``path`` holds while it reads, changes and replaces the file (its
    lock file is removed again when it is released)."""
    path = Path(path)
    return tidy_lock(path.parent / f".{path.name}.lock", timeout=LOCK_TIMEOUT)


def append_result(path: str | Path, record: dict[str, Any]) -> None:
    """Add ``record`` to ``path`` (created with its folder if missing), safe against concurrent
    writers. A record with a wrongly-typed or non-finite known field is refused (nothing written)."""
    update_results(path, lambda records: [*records, record])


def update_results(path: str | Path, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
                   locked: bool = False) -> None:
    """Read ``path``'s records, replace them by ``change(records)`` and write the file atomically,
    all under `results_lock` (``locked=True``: the caller already holds it). Every record
    written is checked first: a wrong result is refused and nothing is written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with (contextlib.nullcontext() if locked else results_lock(path)):
            records = change(read_results(path))
            for record in records:
                problem = record_problem(record)
                if problem:
                    raise DataError(f"{path}: refusing to record a wrong result: {problem}")
            write_json_atomic(path, records)
    except Timeout:
        raise OutputError(f"{path}: another process has held its lock for {LOCK_TIMEOUT:.0f} s; nothing was written") from None
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc}); the previous file is unchanged") from None


def config_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of a config (first 16 hex digits)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
