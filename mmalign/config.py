"""Validated configuration of an alignment run (pydantic v2; unknown keys are errors).

The one configuration layer: every value a recipe holds (latent size, sampling mode, reduction,
the optimiser, the loss families' warm-ups) comes from the recipe, never from a number written
here. `make_config` merges user overrides over a `Recipe`'s
`aligner_defaults`; a config validated without a recipe takes the
missing values from the recipe it names (``recipe``, default ``cada_vae``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, ValidationError,
                      field_validator, model_serializer, model_validator)

from .errors import ConfigError, format_validation_error
from .ramps import Ramp
from .recipes import DEFAULT_RECIPE, Recipe, load_recipe

FORMAT_VERSION = 1


class _Strict(BaseModel):
    """Unknown keys are errors, and so is a NaN or infinite number in any float field."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


#: The one statement of the rule (the CLI shows it with its flag names).
BF16_NEEDS_AUTO = "precision 'bf16' and compile need engine 'auto'"
#: Warm-up keys of earlier releases -> the loss family they weigh.
LEGACY_WARMUP_KEYS = {"beta": "kl", "distance": "align"}
#: Engine names of earlier releases.
LEGACY_ENGINES = {"eager": "reference", "fast": "auto"}


def canonical_warmup(warmup: Any) -> Any:
    """A warm-up table with the earlier key names (``beta``, ``distance``) replaced by the loss
    family they weigh; two keys naming one family are a ``ValueError``. The one place they are read."""
    if not isinstance(warmup, dict):
        return warmup
    out = {}
    for key, value in warmup.items():
        family = LEGACY_WARMUP_KEYS.get(key, key)
        if family in out:
            raise ValueError(f"{key!r} and {family!r} name the same loss family; give one")
        out[family] = value
    return out


#: The optimiser and warm-up values a recipe holds (``[training]`` of a recipe file).
RECIPE_TRAINING_KEYS = frozenset({"epochs", "batch_size", "lr", "betas", "eps", "amsgrad", "weight_decay", "warmup"})


def _missing_from(data: Any, defaults: dict[str, Any]) -> Any:
    """``data`` (a dict of given values) with the keys it lacks taken from ``defaults``."""
    return {**defaults, **data} if isinstance(data, dict) else data


class TrainConfig(_Strict):
    """Optimisation of the VAEs. The optimiser and warm-up values default to the ``cada_vae``
    recipe's (Adam with AMSGrad, lr 1.5e-4, batch 50, 100 epochs, its kl/cross/align ramps);
    engine ``auto``, precision ``fp32``."""

    epochs: PositiveInt = Field(description="Epochs; an epoch is ceil(N_train / batch_size) steps.")
    batch_size: PositiveInt = Field(description="Samples per step, drawn without replacement each step.")
    lr: PositiveFloat = Field(description="Adam learning rate.")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field(description="Adam betas.")
    eps: PositiveFloat = Field(description="Adam epsilon.")
    amsgrad: bool = Field(description="AMSGrad variant of Adam.")
    weight_decay: NonNegativeFloat = Field(description="Adam weight decay.")
    warmup: dict[str, Ramp] = Field(
        description="Loss family -> weight schedule (a linear ramp, or a constant). Families not named keep "
                    "their plugin's default weight (recon: 1). Earlier names 'beta' and 'distance' mean 'kl' "
                    "and 'align'.",
    )
    log_every: PositiveInt = Field(50, description="Steps between finite checks (the only host syncs besides the epoch end).")
    engine: Literal["auto", "reference"] = Field(
        "auto", description="auto: the fastest path that agrees with the reference on the device (CUDA graph on a "
                            "GPU, fused Adam and oneDNN on a CPU); reference: the plain PyTorch loop. Earlier names "
                            "'eager' and 'fast' mean 'reference' and 'auto'.",
    )
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast of the matrix products (engine 'auto' only).")
    compile: bool = Field(False, description="torch.compile the training step (engine 'auto' only).")

    @model_validator(mode="before")
    @classmethod
    def _recipe_values(cls, data: Any) -> Any:
        if not isinstance(data, dict) or RECIPE_TRAINING_KEYS <= set(data):
            return data  # complete: no recipe needed
        return _missing_from(data, load_recipe(DEFAULT_RECIPE).aligner_defaults()["training"])

    @field_validator("engine", mode="before")
    @classmethod
    def _legacy_engine(cls, engine: Any) -> Any:
        return LEGACY_ENGINES.get(engine, engine) if isinstance(engine, str) else engine

    @field_validator("warmup", mode="before")
    @classmethod
    def _legacy_warmup(cls, warmup: Any) -> Any:
        return canonical_warmup(warmup)

    @field_validator("warmup", mode="after")
    @classmethod
    def _check_ramps(cls, warmup: dict[str, Ramp]) -> dict[str, Ramp]:
        """A weight is a finite non-negative number; a ramp's epochs are finite."""
        for family, ramp in warmup.items():
            if not math.isfinite(ramp.factor) or ramp.factor < 0:
                raise ValueError(f"family {family!r}: 'factor' must be a finite number >= 0, got {ramp.factor!r}")
            for name in ("start", "end"):
                value = getattr(ramp, name)
                if value is not None and not math.isfinite(value):
                    raise ValueError(f"family {family!r}: {name!r} must be a finite epoch, got {value!r}")
        return warmup

    @model_validator(mode="after")
    def _check_engine(self) -> "TrainConfig":
        if self.engine == "reference" and (self.precision != "fp32" or self.compile):
            raise ValueError(BF16_NEEDS_AUTO)
        return self



class AlignerConfig(_Strict):
    """Everything that defines an alignment run besides the modalities and the data. Values the
    recipe holds default to the named recipe's (``cada_vae``: latent size 64, ``cada2019``
    sampling, summed terms)."""

    recipe: str | None = Field(DEFAULT_RECIPE, description="Recipe the defaults came from (recorded).")
    latent_size: PositiveInt = Field(description="Latent dimension shared by all modalities.")
    reparameterization: Literal["cada2019", "standard"] = Field(
        description="cada2019: the reference code's sampling; standard: textbook VAE."
    )
    reduction: Literal["sum", "mean"] = Field(description="Batch reduction of every loss term (CADA: sum).")
    pair_weights: dict[str, NonNegativeFloat] = Field(
        default_factory=dict, description="Optional extra weight per term name, e.g. {'cross/att->img': 0.5}."
    )
    tuple_scaling: Literal["sum", "mean", "pair"] = Field(
        "sum", description="How a loss family's terms over its modality tuples add up: sum (CADA-VAE; a family "
                           "grows with the tuples), mean (the mean over its tuples) or pair (scaled to its tuple "
                           "count at M = 2: equal to sum for two modalities).")
    loss_options: dict[str, dict[str, float | int | str | bool]] = Field(
        default_factory=dict, description="Loss family -> its options, e.g. {'contrastive': {'temperature': 0.05}} "
                                          "(each family declares the options it takes).")
    seed: int = Field(0, ge=0, lt=2**63, description="Drives every random choice: init, batches, noise.")
    device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'.")
    training: TrainConfig = Field(description="Optimisation (see TrainConfig).")

    @model_serializer(mode="wrap")
    def _drop_empty_loss_options(self, handler):
        """Without loss options the dump is the one of earlier releases (checkpoints, config
        hashes and resume fingerprints unchanged)."""
        out = handler(self)
        if isinstance(out, dict) and not out.get("loss_options"):
            out.pop("loss_options", None)
        return out

    @model_validator(mode="before")
    @classmethod
    def _recipe_values(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("recipe", DEFAULT_RECIPE)
        if not (name is None or isinstance(name, str)):
            return data  # the field's own check reports it
        missing = {"latent_size", "reparameterization", "reduction", "training"} - set(data)
        if not missing:
            return data
        defaults = load_recipe(name or DEFAULT_RECIPE).aligner_defaults()
        defaults.pop("recipe")
        return merge_config(defaults, data)

    @field_validator("device")
    @classmethod
    def _check_device(cls, device: str) -> str:
        if not (device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        return device


def merge_tables(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, tables recursively (a new dict; neither argument changes)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge_tables(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def merge_config(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`merge_tables` for aligner configs, except that a loss family's schedule in
    ``over["training"]["warmup"]`` replaces the base's whole (a user's constant weight is never
    mixed with the recipe's ramp)."""
    merged = merge_tables(base, over)
    training = over.get("training")
    given = training.get("warmup") if isinstance(training, dict) else None
    if isinstance(given, dict) and isinstance(base.get("training"), dict):
        recipe_warmup = base["training"].get("warmup")
        if isinstance(recipe_warmup, dict):
            merged["training"]["warmup"] = {**recipe_warmup, **given}
    return merged


def make_config(config: "AlignerConfig | dict[str, Any] | None" = None,
                recipe: "Recipe | str | None" = DEFAULT_RECIPE) -> AlignerConfig:
    """Validate ``config`` (a dict of overrides) on top of ``recipe``'s values (a
    `Recipe`, a recipe name or file, or None for the field defaults);
    ``config["recipe"]``, when given, names the recipe instead."""
    if isinstance(config, AlignerConfig):
        return config
    overrides = dict(config or {})
    if "recipe" in overrides:
        recipe = overrides["recipe"]
        if recipe is not None and not isinstance(recipe, str):
            raise ConfigError(f"config: key 'recipe': expected a recipe name (string) or null, got {type(recipe).__name__}")
    training = overrides.get("training")
    if isinstance(training, dict) and "warmup" in training:
        try:
            overrides["training"] = {**training, "warmup": canonical_warmup(training["warmup"])}
        except ValueError as exc:
            raise ConfigError(f"config: key 'training.warmup': {exc}") from None
    if recipe is None:
        base: dict[str, Any] = {"recipe": None}
    else:
        loaded = load_recipe(recipe)
        base = loaded.aligner_defaults()
    try:
        return AlignerConfig.model_validate(merge_config(base, overrides))
    except ValidationError as exc:
        raise ConfigError(format_validation_error("config", exc)) from None
