"""Validated configuration of an alignment run (pydantic v2; unknown keys are errors).

Defaults are the CADA-VAE paper recipe (``registry/recipes/cada_vae.toml``); :func:`from_recipe`
builds a config from any recipe, then user overrides are applied on top.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .recipes import Ramp, load_recipe

FORMAT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Warmup(_Strict):
    """Warm-up ramps, evaluated per epoch: ``clip((epoch - start)/(end - start) * factor, 0, factor)``."""

    beta: Ramp = Field(Ramp(start=0, end=93, factor=0.25), description="KL weight.")
    cross: Ramp = Field(Ramp(start=21, end=75, factor=2.37), description="Cross-reconstruction weight.")
    distance: Ramp = Field(Ramp(start=6, end=22, factor=8.13), description="2-Wasserstein alignment weight.")


class TrainConfig(_Strict):
    """Optimisation of the VAEs. Defaults: Adam (AMSGrad), lr 1.5e-4, batch 50, 100 epochs."""

    epochs: PositiveInt = Field(100, description="Epochs; an epoch is ceil(N_train / batch_size) steps.")
    batch_size: PositiveInt = Field(50, description="Samples per step, drawn without replacement each step.")
    lr: PositiveFloat = Field(1.5e-4, description="Adam learning rate.")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field((0.9, 0.999), description="Adam betas.")
    eps: PositiveFloat = Field(1e-8, description="Adam epsilon.")
    amsgrad: bool = Field(True, description="AMSGrad variant of Adam.")
    weight_decay: NonNegativeFloat = Field(0.0, description="Adam weight decay.")
    warmup: Warmup = Field(default_factory=Warmup, description="Loss-weight ramps.")
    log_every: PositiveInt = Field(50, description="Steps between progress updates (the only host syncs).")
    engine: Literal["eager", "fast"] = Field(
        "eager", description="eager: the plain reference loop; fast: mmalign.fast (fused optimizer, oneDNN, optional compile)."
    )
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast of the matrix products (engine 'fast' only).")
    compile: bool = Field(False, description="torch.compile the training step (engine 'fast' only).")

    @model_validator(mode="after")
    def _check_engine(self) -> "TrainConfig":
        if self.engine == "eager" and (self.precision != "fp32" or self.compile):
            raise ValueError("precision 'bf16' and compile need engine 'fast'")
        return self


class AlignerConfig(_Strict):
    """Everything that defines an alignment run besides the modalities and the data."""

    recipe: str | None = Field("cada_vae", description="Recipe the defaults came from (recorded).")
    latent_size: PositiveInt = Field(64, description="Latent dimension shared by all modalities.")
    reparameterization: Literal["cada2019", "standard"] = Field(
        "cada2019", description="cada2019: the reference code's sampling; standard: textbook VAE."
    )
    reduction: Literal["sum", "mean"] = Field("sum", description="Batch reduction of every loss term (CADA: sum).")
    pair_weights: dict[str, NonNegativeFloat] = Field(
        default_factory=dict, description="Optional extra weight per term name, e.g. {'cross/att->img': 0.5}."
    )
    seed: int = Field(0, ge=0, lt=2**63, description="Drives every random choice: init, batches, noise.")
    device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'.")
    training: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("device")
    @classmethod
    def _check_device(cls, device: str) -> str:
        if not (device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        return device


def recipe_defaults(name: str) -> dict[str, Any]:
    """An :class:`AlignerConfig` dict holding the recipe's values."""
    recipe = load_recipe(name)
    t = recipe.training
    return {
        "recipe": name,
        "latent_size": recipe.model.latent_size,
        "reparameterization": recipe.reparameterization,
        "reduction": recipe.model.reduction,
        "training": {
            "epochs": t.epochs, "batch_size": t.batch_size, "lr": t.lr, "betas": t.betas, "eps": t.eps,
            "amsgrad": t.amsgrad, "weight_decay": t.weight_decay,
            "warmup": {k: v.model_dump() for k, v in t.warmup},
        },
    }


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def make_config(config: "AlignerConfig | dict[str, Any] | None" = None, recipe: str | None = "cada_vae") -> AlignerConfig:
    """Validate ``config`` (a dict of overrides) on top of the recipe's defaults."""
    if isinstance(config, AlignerConfig):
        return config
    overrides = dict(config or {})
    recipe = overrides.get("recipe", recipe)
    if recipe is not None and not isinstance(recipe, str):
        raise ConfigError(f"config: key 'recipe': expected a recipe name (string) or null, got {type(recipe).__name__}")
    base = recipe_defaults(recipe) if recipe else {"recipe": None}
    try:
        return AlignerConfig.model_validate(_merge(base, overrides))
    except ValidationError as exc:
        from .modality import format_validation_error

        raise ConfigError(format_validation_error("config", exc)) from None
