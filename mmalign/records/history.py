"""The training history (per-epoch loss terms, the loss families' warm-up weights, seconds) as
JSON: ``history.json`` in a checkpoint directory, and the ``history`` of every result record."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

from ..atomic import write_json_atomic
from ..errors import CheckpointError
from ..training import EpochLog

HISTORY = "history.json"


def history_rows(history: Sequence[Any]) -> list[dict[str, Any]]:
    """One JSON-able dict per epoch: ``epoch``, ``terms``, ``weights`` (``{}`` when the training
    loop did not record them) and ``seconds``."""
    return [{"epoch": int(h.epoch), "terms": {k: float(v) for k, v in h.terms.items()},
             "weights": {k: float(v) for k, v in (getattr(h, "weights", None) or {}).items()},
             "seconds": float(h.seconds)} for h in history]


def write_history(folder: str | Path, history: Sequence[Any]) -> Path:
    """``folder/history.json``, written atomically."""
    return write_json_atomic(Path(folder) / HISTORY, {"epochs": history_rows(history)})


def read_history(folder: str | Path) -> list[EpochLog]:
    """The saved history (``[]`` when the checkpoint has none, as checkpoints of mmalign 0.1.0)."""
    path = Path(folder) / HISTORY
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())["epochs"]
        fields = {f.name for f in dataclasses.fields(EpochLog)}
        logs = []
        for row in rows:
            values = {"epoch": int(row["epoch"]), "terms": {k: float(v) for k, v in row["terms"].items()},
                      "seconds": float(row["seconds"]), "weights": {k: float(v) for k, v in row.get("weights", {}).items()}}
            logs.append(EpochLog(**{k: v for k, v in values.items() if k in fields}))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a valid history file (expected {{'epochs': [{{'epoch', 'terms', "
                              f"'weights', 'seconds'}}, ...]}}; {type(exc).__name__}: {exc})") from None
    if not all(math.isfinite(v) for log in logs for v in log.terms.values()):
        raise CheckpointError(f"{path}: key 'terms' holds a non-finite number")
    return logs

