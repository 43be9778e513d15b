"""The one result schema: every record written by ``mmalign benchmark``, ``mmalign eval`` and
``mmalign benchmark cub-text`` is a `ResultRecord`.

A results file is a JSON list of records. Metrics are percent (0-100) everywhere, every record
carries the same metadata (what ran, on which data, with which code and device, how long each
phase took) and one record stands for one (config, seed): `record_key` names it. The
schema is versioned (`SCHEMA_VERSION`); files written before it (version 1, the formats of
mmalign 0.1.0) are converted by `mmalign.records.migrate` when read. ``mmalign schema results``
prints `results_json_schema`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import DataError, format_validation_error

SCHEMA_VERSION = 2
COMMANDS = ("benchmark", "eval", "cub-text")
#: The fields that identify a record: one (config, seed) has one record in a results file.
KEY_FIELDS = ("command", "dataset", "setting", "shots", "seed", "side_info", "method", "modalities", "query",
              "gallery", "recipe", "reparameterization", "policy", "epochs_vae", "synthetic", "engine",
              "precision", "overrides")


Metric = Literal["S", "U", "H", "top1", "top5", "mrr"]
#: Metric names a record may hold, all in percent.
METRICS: tuple[str, ...] = get_args(Metric)
#: A percentage: finite, in [0, 100].
Percent = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Versions(_Strict):
    """Package versions of the run."""

    mmalign: str = Field(description="mmalign's version.")
    commit: str | None = Field(None, description="git commit of the mmalign source (+dirty), when run from a checkout.")
    torch: str | None = Field(None, description="torch's version.")
    python: str | None = Field(None, description="Python's version.")
    plugins: dict[str, str] = Field(default_factory=dict, description="Loaded plugin name -> version.")


class EpochEntry(_Strict):
    """One epoch of VAE training."""

    epoch: int = Field(ge=0, description="0-based epoch.")
    terms: dict[str, float] = Field(description="Mean of every loss term over the epoch ('loss' is the total).")
    weights: dict[str, float] = Field(default_factory=dict,
                                      description="Each loss family's warm-up weight at this epoch (kl, cross, align).")
    seconds: float = Field(ge=0, description="Wall seconds of the epoch.")


class Confusion(_Strict):
    """Where the test images of the worst classes went: ``counts[i][j]`` images of ``rows[i]``
    predicted as ``columns[j]`` (the last column, ``other``, sums the rest)."""

    rows: list[str]
    columns: list[str]
    counts: list[list[int]]

    @model_validator(mode="after")
    def _check_table(self) -> "Confusion":
        """One row of counts per row name, one count per column name, none negative."""
        if len(self.counts) != len(self.rows):
            raise ValueError(f"'counts' has {len(self.counts)} rows, expected one per row name ({len(self.rows)})")
        for i, row in enumerate(self.counts):
            if len(row) != len(self.columns):
                raise ValueError(f"'counts[{i}]' has {len(row)} entries, expected one per column ({len(self.columns)})")
            if any(c < 0 for c in row):
                raise ValueError(f"'counts[{i}]' holds a negative count")
        return self


class ResultRecord(_Strict):
    """One result: one command, one (config, seed), metrics in percent."""

    schema_version: Literal[2] = Field(SCHEMA_VERSION, description="Version of this schema.")
    command: Literal["benchmark", "eval", "cub-text"] = Field(description="The command that wrote the record.")
    dataset: str = Field(description="Data set or benchmark (CUB, AWA2, cub-text, a folder name).")
    setting: Literal["gzsl", "zsl"] = Field(description="gzsl: all classes; zsl: unseen classes only.")
    shots: int = Field(0, ge=0, description="Images per unseen class moved to training (few-shot).")
    seed: int = Field(description="The one seed that drove the run.")
    side_info: str | None = Field(None, description="Class side information (attributes, sentences, ...).")
    method: str = Field("aligner", description="aligner (CADA-VAE losses), or a retrieval baseline (ridge, cca).")
    modalities: list[str] = Field(default_factory=list, description="The modalities fitted together.")
    query: str | None = Field(None, description="Retrieval: the query modality.")
    gallery: str | None = Field(None, description="Retrieval: the gallery modality.")
    recipe: str = Field("cada_vae", description="The recipe the run was configured from (its name).")
    reparameterization: str | None = Field(None, description="cada2019 (the authors' code) or standard.")
    policy: str | None = Field(None, description="Classifier-epoch policy: fixed, val, test or manual.")
    classifier_epochs: int | None = Field(None, description="Epochs of the final classifier.")
    epochs_vae: int | None = Field(None, description="VAE training epochs.")
    synthetic: bool = Field(False, description="Generated data (never judged against the paper).")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Aligner config values set beyond the recipe and the command's flags "
                                          "(a sweep's grid values, e.g. {\"latent_size\": 32}); part of the identity.")
    engine: str | None = Field(None, description="Training engine.")
    precision: str | None = Field(None, description="Training precision (fp32, bf16).")
    device: str | None = Field(None, description="torch device (cpu, cuda).")
    device_name: str | None = Field(None, description="CPU model and threads, or the GPU's name.")
    versions: Versions
    config_hash: str | None = Field(None, description="sha256 (16 hex) of the aligner config and modalities.")
    data_hashes: dict[str, str] = Field(default_factory=dict, description="sha256 of each data file (or the arrays).")
    seconds: dict[str, float] = Field(default_factory=dict, description="Wall seconds per phase.")
    metrics: dict[Metric, Percent] = Field(description="S, U, H (gzsl) or top1 (zsl); retrieval: top1, top5, mrr. Percent.")
    per_class: dict[Literal["S", "U"], dict[str, Percent]] = Field(
        default_factory=dict, description="Per-class accuracy (percent) by class name, under S and U.")
    confusion: Confusion | None = Field(None, description="Confusion of the worst classes.")
    history: list[EpochEntry] = Field(default_factory=list, description="VAE training history, one entry per epoch.")
    details: dict[str, Any] = Field(default_factory=dict,
                                    description="Command-specific facts (epoch selection, warnings, checkpoint, ...).")
    migrated_from: str | None = Field(None, description="The older format this record was converted from.")

    def key(self) -> tuple:
        return record_key(self)


def record_key(record: ResultRecord | dict[str, Any]) -> tuple:
    """The identity of a record: equal keys mean the same config and seed."""
    raw = record.model_dump(mode="json") if isinstance(record, ResultRecord) else record
    return tuple(json.dumps(raw.get(k, _default(k)), sort_keys=True) for k in KEY_FIELDS)


def _default(field: str) -> Any:
    info = ResultRecord.model_fields[field]
    return None if info.is_required() else info.get_default(call_default_factory=True)


def describe_key(record: ResultRecord) -> str:
    """A short human name of a record's identity (for messages)."""
    parts = [record.dataset, record.setting, f"{record.shots} shots", f"seed {record.seed}"]
    if record.query:
        parts.insert(2, f"{record.method} {'+'.join(record.modalities)} {record.query}->{record.gallery}")
    return ", ".join(parts)


def validate_record(raw: Any, where: str) -> ResultRecord:
    """A `ResultRecord` from a dict; `DataError` naming ``where`` and the key otherwise."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a result record (an object), got {type(raw).__name__}")
    try:
        return ResultRecord.model_validate(raw)
    except ValidationError as exc:
        raise DataError(f"{format_validation_error(where, exc)} (schema version {SCHEMA_VERSION}; "
                        f"see 'mmalign schema results')") from None


def dump_record(record: ResultRecord) -> dict[str, Any]:
    """The JSON form written to a results file (unset optional fields left out)."""
    return record.model_dump(mode="json", exclude_none=True)


def results_json_schema() -> dict[str, Any]:
    """The JSON Schema of a results file: a list of `ResultRecord`."""
    item = ResultRecord.model_json_schema()
    defs = item.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"mmalign results file (schema version {SCHEMA_VERSION})",
        "description": "A JSON list of result records, one per (config, seed); metrics in percent.",
        "type": "array",
        "items": {"$ref": "#/$defs/ResultRecord"},
        "$defs": {**defs, "ResultRecord": item},
    }
