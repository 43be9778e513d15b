"""Reading and writing results files in the one schema (`mmalign.records.schema`).

Every writer (``benchmark``, ``eval``, ``cub-text``) goes through `write_record`, which
validates the record and adds it under the results file lock (`mmalign.records.store.update_results`, atomic). Before a
run starts, `check_rerun` decides what to do with a record that is already there: skip it
(``--resume``), replace it (``--force``), or refuse with a message naming both flags, so one
(config, seed) never has two records. Files of the previous release are converted on read, and
on disk (the old file kept beside it as ``<name>.v1.json``) before the first new record is added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..atomic import write_json_atomic
from ..errors import ConfigError, DataError
from .migrate import is_cub_text_v1, migrate_cub_text, migrate_record
from .store import read_results, results_lock, update_results
from .schema import SCHEMA_VERSION, ResultRecord, describe_key, dump_record, record_key


def _raw(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a valid results file ({exc}); move it away or choose another --out "
                        "(it is not overwritten)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read as a results file ({exc.strerror or exc}); move it away or "
                        "choose another --out (it is not overwritten)") from None


def load_records(path: str | Path) -> list[ResultRecord]:
    """Every record of ``path`` in the current schema (``[]`` when the file does not exist).

    Version-1 files (any of the three old formats) are converted in memory. When an old file
    holds the same (config, seed) twice, the last record wins."""
    path = Path(path)
    if not path.exists():
        return []
    raw = _raw(path)
    if is_cub_text_v1(raw):
        records = migrate_cub_text(raw, str(path))
    else:
        records = [migrate_record(r, f"{path}: record {i}") for i, r in enumerate(read_results(path))]
    return list({r.key(): r for r in records}.values())


def upgrade_file(path: str | Path) -> bool:
    """Rewrite an old-format results file in the current schema (atomically), keeping the original
    as ``<stem>.v1.json``; returns whether it was rewritten."""
    path = Path(path)
    if not path.exists():
        return False
    raw = _raw(path)
    current = isinstance(raw, list) and all(isinstance(r, dict) and r.get("schema_version") == SCHEMA_VERSION for r in raw)
    if current:
        return False
    records = load_records(path)
    write_json_atomic(path.with_name(f"{path.stem}.v1.json"), raw)
    write_json_atomic(path, [dump_record(r) for r in records])
    return True


def check_rerun(existing: Iterable[ResultRecord], probe: dict[str, Any], path: Path, resume: bool,
                force: bool) -> ResultRecord | None:
    """The recorded result with ``probe``'s key when ``resume`` (the caller skips the run);
    ``None`` when the run should go ahead. Without ``resume`` or ``force`` an existing record is
    refused: `ConfigError` naming both flags."""
    key = record_key(probe)
    found = [r for r in existing if r.key() == key]
    if not found or force:
        return None
    if resume:
        return found[-1]
    raise ConfigError(f"{path}: {describe_key(found[-1])} is already recorded; pass --resume to keep it and skip "
                      "this run, or --force to run it again and replace the record")


def write_record(path: str | Path, record: ResultRecord | dict[str, Any], replace: bool = False) -> ResultRecord:
    """Validate ``record`` and append it to ``path`` (old formats converted first). With
    ``replace`` (``--force``), records with the same key are removed first."""
    path = Path(path)
    if not isinstance(record, ResultRecord):
        record = ResultRecord.model_validate(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    with results_lock(path):  # one writer at a time through the upgrade, the replacement and the append
        upgrade_file(path)
        keep = (lambda r: record_key(r) != record.key()) if replace else (lambda r: True)
        update_results(path, lambda records: [*(r for r in records if keep(r)), dump_record(record)], locked=True)
    return record
