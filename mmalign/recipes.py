"""Read and validate the declarative records in ``registry/`` (installed as ``mmalign_registry``).

Recipes hold every hyperparameter of a method per dataset and setting; references hold published
numbers with their source and a tolerance. Both are TOML, validated with pydantic on load so a typo
in a record fails with the file and key named.
"""

from __future__ import annotations

import math
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ramp(_Strict):
    """A loss family's weight per epoch: ``clip((epoch - start) / (end - start) * factor, 0, factor)``
    (the reference code's linear warm-up), or the constant ``factor`` when ``start`` and ``end`` are
    both left out."""

    start: float | None = None
    end: float | None = None
    factor: float

    @model_validator(mode="after")
    def _check_span(self) -> "Ramp":
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end (a linear warm-up), or neither (a constant weight)")
        if self.start is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self

    def at(self, epoch: float) -> float:
        """The weight in ``epoch`` (0-based; evaluated once per epoch, as in the reference)."""
        if self.start is None:
            return self.factor
        value = (epoch - self.start) / (self.end - self.start) * self.factor
        return min(max(value, 0.0), self.factor)

    def scaled(self, f: float) -> "Ramp":
        """The same ramp over an epoch axis stretched by ``f`` (a run of ``f`` times the epochs)."""
        if self.start is None:
            return self
        return Ramp(start=self.start * f, end=self.end * f, factor=self.factor)

    def first_active_epoch(self, epochs: int | None = None) -> int | None:
        """The first epoch (below ``epochs``, when given) with a non-zero weight, or None."""
        if self.factor == 0.0:
            return None
        first = 0 if self.start is None else max(0, math.floor(self.start) + 1)
        return first if epochs is None or first < epochs else None


class RecipeModel(_Strict):
    latent_size: int
    reduction: Literal["sum", "mean"]
    hidden: dict[str, tuple[int, int]]


class RecipeTraining(_Strict):
    epochs: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    eps: float
    amsgrad: bool
    weight_decay: float
    #: loss family -> its weight schedule (``recon`` has weight 1 unless named here)
    warmup: dict[str, Ramp]


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
    #: loss family -> its options (validated by the family's own ``options`` model when a run is built)
    losses: dict[str, dict[str, Any]] = {}
    #: how the recipe's values were chosen: the search space and the command (free-form; recorded)
    search: dict[str, Any] = {}


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
