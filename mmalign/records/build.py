"""One `ResultRecord` from an `evaluate` result:
shared by ``mmalign benchmark`` and ``mmalign eval`` so both write the same fields."""

from __future__ import annotations

from typing import Any

from .history import history_rows
from .provenance import data_hashes, device_name, versions
from .store import config_hash
from .schema import METRICS, ResultRecord

#: Facts of an evaluation kept under ``details``.
_DETAILS = ("selected_on", "selection", "classifier", "adam", "train_latents", "num_classes", "image", "side")


def aligner_provenance(aligner: Any) -> dict[str, Any]:
    """Device, versions, config hash and training history of a trained aligner."""
    return {
        "device": str(aligner.device), "device_name": device_name(aligner.device), "versions": versions(),
        "config_hash": config_hash({"aligner": aligner.config.model_dump(mode="json"),
                                    "modalities": [m.describe() for m in aligner.modalities.values()]}),
        "history": history_rows(aligner.history),
    }


def evaluation_record(command: str, result: dict[str, Any], aligner: Any, data: Any, key: dict[str, Any],
                      seconds: dict[str, float], details: dict[str, Any] | None = None) -> ResultRecord:
    """The record of one evaluation: ``key`` (the identifying fields), the metrics (percent), the
    per-class breakdown, the provenance of ``aligner`` and ``data``, and ``seconds`` per phase."""
    return ResultRecord.model_validate({
        **key, "command": command,
        "classifier_epochs": result.get("classifier_epochs"),
        **aligner_provenance(aligner),
        "data_hashes": data_hashes(data),
        "seconds": {k: round(float(v), 3) for k, v in seconds.items()},
        "metrics": {k: float(result[k]) for k in METRICS if k in result},
        "per_class": result.get("per_class", {}),
        "confusion": result.get("confusion"),
        "details": {**{k: result[k] for k in _DETAILS if k in result}, **(details or {})},
    })
