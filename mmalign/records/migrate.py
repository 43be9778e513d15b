"""Convert results files of mmalign 0.1.0 (schema version 1) to `ResultRecord`.

Version 1 had three formats:

- ``mmalign benchmark``: a JSON list of flat records (``S``/``U``/``H`` or ``top1`` in percent,
  ``mmalign_version``, ``torch_version``, ``recipe``, ``warnings``, ...);
- ``mmalign eval``: the same list, records with a ``checkpoint`` key and the evaluation's fields;
- ``mmalign benchmark cub-text``: one object ``{"meta", "records", "summary"}``, metrics as
  fractions and ``meta`` holding what the records share.

The conversion is lossless for every field the new schema has a place for; the rest goes to
``details``. Each converted record says where it came from in ``migrated_from``.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError
from .schema import SCHEMA_VERSION, ResultRecord, validate_record

_METRICS_V1 = ("S", "U", "H", "top1")
_DETAILS_V1 = ("recipe", "data_name", "warnings", "selected_on", "selection", "classifier", "train_latents", "adam",
               "image", "side", "num_classes", "checkpoint")


def is_cub_text_v1(raw: Any) -> bool:
    return isinstance(raw, dict) and "meta" in raw and "records" in raw


def migrate_record(raw: dict[str, Any], where: str) -> ResultRecord:
    """One record of a list-format file, version 1 or 2."""
    if raw.get("schema_version") == SCHEMA_VERSION:
        return validate_record(raw, where)
    if "schema_version" in raw:
        raise DataError(f"{where}: key 'schema_version' is {raw['schema_version']!r}; this mmalign reads versions "
                        f"1 and {SCHEMA_VERSION} (upgrade mmalign for newer files)")
    command = "eval" if "checkpoint" in raw else "benchmark"
    body = {
        "command": command,
        **{k: raw[k] for k in ("dataset", "setting", "shots", "seed", "side_info", "reparameterization", "policy",
                               "classifier_epochs", "epochs_vae", "synthetic", "engine", "precision", "device",
                               "device_name", "config_hash", "data_hashes", "seconds") if raw.get(k) is not None},
        "versions": {"mmalign": raw.get("mmalign_version", "0.1.0"), "torch": raw.get("torch_version")},
        "metrics": {k: float(raw[k]) for k in _METRICS_V1 if k in raw},
        "modalities": [raw.get("image", "img"), raw.get("side", "att")],
        "details": {k: raw[k] for k in _DETAILS_V1 if k in raw},
        "migrated_from": f"{command} (schema version 1)",
    }
    return validate_record(body, where)


def migrate_cub_text(raw: dict[str, Any], where: str) -> list[ResultRecord]:
    """The records of a version-1 ``{meta, records, summary}`` cub-text file, metrics in percent."""
    meta = raw.get("meta")
    records = raw.get("records")
    if not isinstance(meta, dict) or not isinstance(records, list):
        raise DataError(f"{where}: a cub-text results file needs an object 'meta' and a list 'records'")
    shared = {k: meta[k] for k in ("text_mode", "sentences", "hidden", "class_repeats") if k in meta}
    out = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise DataError(f"{where}: records[{i}] must be an object, got {type(r).__name__}")
        aligner = r.get("method") == "aligner"
        details = {**shared, **{k: r[k] for k in ("params", "final_loss") if k in r}}
        body = {
            "command": "cub-text", "dataset": "cub-text", "setting": r.get("setting"), "seed": r.get("seed"),
            "method": r.get("method"), "modalities": str(r.get("alignment", "")).split("+"),
            "query": r.get("query"), "gallery": r.get("gallery"),
            "epochs_vae": meta.get("epochs") if aligner else None, "device_name": meta.get("device"),
            "versions": {"mmalign": meta.get("mmalign_version", "0.1.0")},
            "metrics": {k: 100.0 * float(r[k]) for k in ("top1", "top5", "mrr") if isinstance(r.get(k), (int, float))},
            "details": details, "migrated_from": "cub-text (schema version 1)",
        }
        out.append(validate_record({k: v for k, v in body.items() if v is not None}, f"{where}: records[{i}]"))
    return out
