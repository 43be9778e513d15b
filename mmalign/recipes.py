"""Read and validate the declarative records in ``registry/`` (installed as ``mmalign_registry``).

Recipes hold every hyperparameter of a method per dataset and setting; references hold published
numbers with their source and a tolerance. Both are TOML, validated with pydantic on load so a typo
in a record fails with the file and key named.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ramp(_Strict):
    """Linear warm-up: ``clip((epoch - start) / (end - start) * factor, 0, factor)``."""

    start: float
    end: float
    factor: float

    @model_validator(mode="after")
    def _check_span(self) -> "Ramp":
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class RecipeModel(_Strict):
    latent_size: int
    reduction: Literal["sum", "mean"]
    hidden: dict[str, tuple[int, int]]


class RecipeWarmup(_Strict):
    beta: Ramp
    cross: Ramp
    distance: Ramp


class RecipeTraining(_Strict):
    epochs: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    eps: float
    amsgrad: bool
    weight_decay: float
    warmup: RecipeWarmup


class ClassifierEpochs(_Strict):
    gzsl: list[int]
    zsl: list[int]


class RecipeClassifier(_Strict):
    lr: float
    betas: tuple[float, float]
    batch_size: int
    shots: list[int]
    latents: dict[str, tuple[int, int, int, int]]
    epochs: dict[str, ClassifierEpochs]

    def fixed_epochs(self, dataset: str, setting: str, shots: int) -> int | None:
        """The released code's epoch count, or None when the table has no entry."""
        table = self.epochs.get(dataset.upper())
        if table is None or shots not in self.shots:
            return None
        return getattr(table, "gzsl" if setting == "gzsl" else "zsl")[self.shots.index(shots)]


class Recipe(_Strict):
    name: str
    source: str
    reparameterization: Literal["cada2019", "standard"]
    model: RecipeModel
    training: RecipeTraining
    classifier: RecipeClassifier


class ReferenceResult(_Strict):
    dataset: str
    setting: Literal["gzsl", "zsl"]
    shots: int
    side_info: str
    U: float | None = None
    S: float | None = None
    H: float | None = None
    top1: float | None = None


class References(_Strict):
    source: str
    tolerance: float
    result: list[ReferenceResult]

    def find(self, dataset: str, setting: str, shots: int, side_info: str) -> ReferenceResult | None:
        for r in self.result:
            if (r.dataset, r.setting, r.shots, r.side_info) == (dataset.upper(), setting, shots, side_info):
                return r
        return None


def registry_root() -> Path:
    """Folder of the installed registry records."""
    return Path(str(resources.files("mmalign_registry")))


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: registry file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def validate_record(model: type[BaseModel], raw: dict, path: Path):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: key {where}: {first['msg']}") from None


@lru_cache(maxsize=None)
def load_recipe(name: str = "cada_vae") -> Recipe:
    """The recipe ``registry/recipes/<name>.toml``."""
    path = registry_root() / "recipes" / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in (registry_root() / "recipes").glob("*.toml"))
        raise ConfigError(f"unknown recipe {name!r}; known recipes: {known}")
    return validate_record(Recipe, read_toml(path), path)


@lru_cache(maxsize=None)
def load_references(name: str = "cada_vae_2019") -> References:
    """Published results ``registry/references/<name>.toml``."""
    path = registry_root() / "references" / f"{name}.toml"
    return validate_record(References, read_toml(path), path)
