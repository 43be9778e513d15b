"""Recipes and reference results: the declarative records in ``registry/`` (installed as
``mmalign_registry``), validated with pydantic on load so a typo fails with the file and key named.

A `Recipe` holds every hyperparameter of a method: the networks, the optimiser, each loss
family's warm-up, and the final classifier (latent counts, epoch table per data set and setting).
A command loads it **once** (`load_recipe`, from a registry name such as ``cada_vae`` or a
TOML file path) and hands the object to everything that needs it: the aligner's config
(`Recipe.aligner_defaults`), the classifier, the few-shot protocol and the records. Nothing
else looks a recipe up by name. References hold published numbers with their source and a
tolerance.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from .errors import ConfigError, did_you_mean, format_validation_error
from .ramps import Ramp

#: The recipe every command and the library use unless told otherwise.
DEFAULT_RECIPE = "cada_vae"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecipeModel(_Strict):
    latent_size: int
    reduction: Literal["sum", "mean"]
    hidden: dict[str, tuple[int, int]]
    #: how a family's terms over its modality tuples add up (sum: CADA-VAE; see mmalign.model.TUPLE_SCALINGS)
    tuple_scaling: Literal["sum", "mean", "pair"] = "sum"


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


class RecipeRetrieval(_Strict):
    """Settings of a class-level retrieval benchmark (``mmalign benchmark cub-text``) run with this
    recipe: epochs, the (encoder, decoder) hidden sizes of every modality, and copies of each seen
    class per epoch."""

    epochs: int
    hidden: tuple[int, int]
    class_repeats: int = 15


class Recipe(_Strict):
    """One method's hyperparameters (``registry/recipes/<name>.toml`` or a user's TOML file)."""

    name: str
    source: str
    #: the published results to compare with (``registry/references/<name>.toml``), if any
    references: str | None = None
    reparameterization: Literal["cada2019", "standard"]
    model: RecipeModel
    training: RecipeTraining
    classifier: RecipeClassifier
    #: loss family -> its options (e.g. the contrastive temperature); none by default
    loss_options: dict[str, dict[str, Any]] = {}
    #: modality kind -> options applied like ``model.hidden`` (an option the user set wins); none by default
    modality_options: dict[str, dict[str, Any]] = {}
    #: cub-text's settings with this recipe (None: 50 epochs, hidden (512, 512), 15 class repeats)
    retrieval: RecipeRetrieval | None = None
    #: how the recipe's values were chosen: the search space and the command (free-form; recorded)
    search: dict[str, Any] = {}
    #: where it was read from (a registry file or the user's), for messages and records
    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        return self._path

    def aligner_defaults(self) -> dict[str, Any]:
        """The `AlignerConfig` values this recipe sets (a nested dict; user
        overrides are merged over it)."""
        t = self.training
        return {
            "recipe": self.name,
            "latent_size": self.model.latent_size,
            "reparameterization": self.reparameterization,
            "reduction": self.model.reduction,
            "tuple_scaling": self.model.tuple_scaling,
            "loss_options": {k: dict(v) for k, v in self.loss_options.items()},
            "training": {
                "epochs": t.epochs, "batch_size": t.batch_size, "lr": t.lr, "betas": t.betas, "eps": t.eps,
                "amsgrad": t.amsgrad, "weight_decay": t.weight_decay,
                "warmup": {k: v.model_dump(exclude_none=True) for k, v in t.warmup.items()},
            },
        }

    def hidden_for(self, kind: str) -> tuple[int, int] | None:
        """The recipe's (encoder, decoder) hidden sizes for a modality kind, or None."""
        return self.model.hidden.get(kind)

    def describe(self) -> str:
        """``'cada_vae'``, or ``'mine' (path/to/mine.toml)`` for a recipe read from a user's file."""
        registry = self._path is not None and self._path.parent == registry_root() / "recipes"
        return repr(self.name) if self._path is None or registry else f"{self.name!r} ({self._path})"


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
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; expected a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def validate_record(model: type[BaseModel], raw: dict, path: Path):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from None


def recipe_names() -> list[str]:
    """The recipes shipped in ``registry/recipes``."""
    return sorted(p.stem for p in (registry_root() / "recipes").glob("*.toml"))


def load_recipe(recipe: "str | Path | Recipe" = DEFAULT_RECIPE) -> Recipe:
    """A validated `Recipe`: ``recipe`` is a registry name (``"cada_vae"``), a path to a
    TOML file of the same layout, or already a `Recipe` (returned as it is)."""
    if isinstance(recipe, Recipe):
        return recipe
    if not isinstance(recipe, (str, Path)):
        raise ConfigError(f"a recipe is a registry name, a TOML file or a Recipe, got {type(recipe).__name__}")
    text = str(recipe)
    if isinstance(recipe, Path) or text.endswith(".toml") or "/" in text or "\\" in text:
        return _read_recipe(Path(text).expanduser())
    return _registry_recipe(text)


@lru_cache(maxsize=None)
def _registry_recipe(name: str) -> Recipe:
    path = registry_root() / "recipes" / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}{did_you_mean(name, recipe_names())}; known recipes: "
                          f"{', '.join(recipe_names())} (or give the path of a recipe TOML file)")
    return _read_recipe(path)


def _read_recipe(path: Path) -> Recipe:
    recipe = validate_record(Recipe, read_toml(path), path)
    recipe._path = path
    return recipe


@lru_cache(maxsize=None)
def load_references(name: str = "cada_vae_2019") -> References:
    """Published results ``registry/references/<name>.toml``."""
    path = registry_root() / "references" / f"{name}.toml"
    return validate_record(References, read_toml(path), path)
