"""Run configuration files (``mmalign train CONFIG``): which data, which modalities, which config.

A run config is TOML or JSON, validated strictly:

```toml
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
```
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

    def modality_specs(self, data: AlignmentData | None = None) -> list[dict[str, Any]]:
        """`[[modalities]]` when given, else `default_modalities` (of `data`, when given)."""
        if self.modalities is not None:
            return self.modalities
        return default_modalities(self.data.side_info, data)


def default_modalities(side_info: str, data: AlignmentData | None = None) -> list[dict[str, Any]]:
    """The modalities a benchmark or a run config without `[[modalities]]` trains.

    The first two are always the pair the protocols score: `img` (`image_features`) and `att` (the
    class side information). For a built-in data set (or when `data` is not given) that is all:
    CADA-VAE's pair, `img` reading the array `features` and `att` reading `side_info`. For a data set
    registered by a plugin (`data.meta["plugin"]`) the arrays are the plugin's own: `img` reads
    `features` if there is such an array, else the first per-sample array; `att` reads `side_info`
    if there is such an array, else the first per-class array; and every other per-sample array
    (an `image_features` modality) and per-class array (an `attributes` modality) is trained too,
    named after its array.

    Args:
        side_info: the class side information asked for (`"attributes"` or `"sentences"`).
        data: the loaded data set, or None for the names alone.

    Returns:
        Modality specs (dicts for `mmalign.Aligner`), image and side information first.
    """
    if data is None or "plugin" not in data.meta:
        return [{"kind": "image_features", "name": IMAGE}, {"kind": side_info, "name": SIDE}]
    image, side = image_array(data), side_array(side_info, data)
    specs = [{"kind": "image_features", "name": IMAGE, "source": image},
             {"kind": side_info if side == side_info else "attributes", "name": SIDE, "source": side}]
    taken = {IMAGE, SIDE}
    for kind, arrays, used in (("image_features", data.sample_features, image), ("attributes", data.class_features, side)):
        for array in arrays:
            if array != used and array not in taken:
                specs.append({"kind": kind, "name": array, "source": array})
                taken.add(array)
    return specs


def image_array(data: AlignmentData) -> str:
    """The per-sample array the image modality reads: `features`, else the data set's first."""
    if "features" in data.sample_features or not data.sample_features:
        return "features"
    return next(iter(data.sample_features))


def side_array(side_info: str, data: AlignmentData) -> str:
    """The per-class array the side-information modality reads: `side_info` when the data set has
    it; for a plugin's data set without it, its first per-class array."""
    if side_info in data.class_features or "plugin" not in data.meta or not data.class_features:
        return side_info
    return next(iter(data.class_features))


def read_config_file(path: str | Path, what: str = "config file") -> Any:
    """The parsed contents of a TOML file (JSON for ``.json``); `ConfigError` naming ``path``
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
    if side_array(spec.side_info, data) not in data.class_features:
        raise ConfigError(
            f"{data.name}: side information {spec.side_info!r} is not available; it has {sorted(data.class_features)}"
        )
    return data
