"""``results.json``: a JSON list of run records, appended atomically.

Each append writes the old records plus the new one to a temp file and renames it over the old
file, so a run killed at any moment leaves either the previous complete file or the new one, and
every finished record survives. ``--resume`` skips runs whose key is already recorded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from .atomic import write_json_atomic
from .errors import DataError

#: Fields that identify a run: a record with the same values is not run again on ``--resume``.
RUN_KEY = ("dataset", "setting", "shots", "seed", "side_info", "reparameterization", "policy", "epochs_vae", "synthetic",
           "engine", "precision")


def read_results(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    try:
        records = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a valid results file ({exc}); move it away or choose another --out") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path}: expected a JSON list of records")
    return records


def append_result(path: str | Path, record: dict[str, Any]) -> None:
    records = read_results(path)
    records.append(record)
    write_json_atomic(path, records)


def run_key(record: dict[str, Any]) -> tuple:
    return tuple(json.dumps(record.get(k), sort_keys=True) for k in RUN_KEY)


def done_keys(records: Iterable[dict[str, Any]]) -> set[tuple]:
    return {run_key(r) for r in records}


def config_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of a config (first 16 hex digits)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
