"""Run configuration files (``mmalign train CONFIG``): which data, which modalities, which config.

A run config is TOML or JSON, validated strictly::

    [data]
    dataset = "CUB"            # a dataset card name, or a folder in the xlsa17 layout
    synthetic = true           # generated data with CUB's layout (no download needed)
    side_info = "attributes"   # or "sentences" (CUB)

    [aligner]                  # AlignerConfig overrides (defaults: the recipe)
    seed = 0
    training = { epochs = 100 }

    [[modalities]]             # default: img (image_features) + att (the side information)
    kind = "image_features"
    name = "img"
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .data import AlignmentData
from .errors import ConfigError

IMAGE, SIDE = "img", "att"


class DataSpec(BaseModel):
    """Where the data of a run comes from."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field("CUB", description="Dataset card name (CUB, SUN, AWA1, AWA2, APY, FLO) or a folder path.")
    data_dir: str | None = Field(None, description="Root holding <DATASET>/ (default: $MMALIGN_DATA_DIR, then the cache).")
    synthetic: bool = Field(False, description="Generate data with the dataset's layout instead of reading files.")
    synthetic_seed: int = Field(0, description="Seed of the generated data (fixed across training seeds).")
    side_info: Literal["attributes", "sentences"] = Field("attributes", description="Class side information.")
    skip_card_check: bool = Field(False, description="Load files that differ from the dataset card (warned).")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: DataSpec = Field(default_factory=DataSpec)
    aligner: dict[str, Any] = Field(default_factory=dict, description="AlignerConfig overrides.")
    modalities: list[dict[str, Any]] | None = Field(None, description="Modality specs; default img + att.")

    def modality_specs(self) -> list[dict[str, Any]]:
        if self.modalities is not None:
            return self.modalities
        return default_modalities(self.data.side_info)


def default_modalities(side_info: str) -> list[dict[str, Any]]:
    """CADA-VAE's pair: image features + one kind of class side information."""
    return [{"kind": "image_features", "name": IMAGE}, {"kind": side_info, "name": SIDE}]


def read_config_file(path: str | Path, what: str = "config file") -> Any:
    """The parsed contents of a TOML file (JSON for ``.json``); :class:`ConfigError` naming ``path``
    when it is missing or does not parse."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        text = path.read_text()
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse ({exc})") from None


def read_run_config(path: str | Path) -> RunConfig:
    return parse_run_config(read_config_file(path), str(path))


def parse_run_config(raw: Any, where: str = "config") -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table/object at the top level, got {type(raw).__name__}")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        from .errors import format_validation_error

        raise ConfigError(format_validation_error(where, exc)) from None


def load_data(spec: DataSpec) -> AlignmentData:
    """The data a spec names: generated (``synthetic``) or read from xlsa17 files."""
    from .datasets.load import load_dataset
    from .datasets.synthetic import synthetic_like

    if spec.synthetic:
        data = synthetic_like(spec.dataset, seed=spec.synthetic_seed)
        data.meta.setdefault("synthetic_seed", spec.synthetic_seed)
    else:
        required = ("sent_splits.mat",) if spec.side_info == "sentences" else ()
        data = load_dataset(spec.dataset, spec.data_dir, skip_card_check=spec.skip_card_check, require_files=required)
    if spec.side_info not in data.class_features:
        raise ConfigError(
            f"{data.name}: side information {spec.side_info!r} is not available; it has {sorted(data.class_features)}"
        )
    return data
