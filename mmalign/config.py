"""Validated configuration of an alignment run (pydantic v2; unknown keys are errors).

Defaults are the CADA-VAE paper recipe (``registry/recipes/cada_vae.toml``); :func:`from_recipe`
builds a config from any recipe, then user overrides are applied on top.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, ValidationError, field_validator, model_serializer, model_validator

from .errors import ConfigError
from .recipes import Ramp, load_recipe

FORMAT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: Warm-up keys of earlier releases -> the loss family they weigh.
LEGACY_WARMUP_KEYS = {"beta": "kl", "distance": "align"}
#: Engine names of earlier releases.
LEGACY_ENGINES = {"eager": "reference", "fast": "auto"}


def recipe_warmup(recipe: str = "cada_vae") -> dict[str, Ramp]:
    """The loss-family weight schedules of a recipe (its ``training.warmup`` table)."""
    return dict(load_recipe(recipe).training.warmup)


class TrainConfig(_Strict):
    """Optimisation of the VAEs. Defaults: Adam (AMSGrad), lr 1.5e-4, batch 50, 100 epochs, the
    CADA-VAE recipe's warm-up ramps, engine ``auto``."""

    epochs: PositiveInt = Field(100, description="Epochs; an epoch is ceil(N_train / batch_size) steps.")
    batch_size: PositiveInt = Field(50, description="Samples per step, drawn without replacement each step.")
    lr: PositiveFloat = Field(1.5e-4, description="Adam learning rate.")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field((0.9, 0.999), description="Adam betas.")
    eps: PositiveFloat = Field(1e-8, description="Adam epsilon.")
    amsgrad: bool = Field(True, description="AMSGrad variant of Adam.")
    weight_decay: NonNegativeFloat = Field(0.0, description="Adam weight decay.")
    warmup: dict[str, Ramp] = Field(
        default_factory=recipe_warmup,
        description="Loss family -> weight schedule (a linear ramp, or a constant). Families not named keep "
                    "their plugin's default weight (recon: 1). Default: the cada_vae recipe's kl, cross, align "
                    "ramps and contrastive 0. Earlier names 'beta' and 'distance' mean 'kl' and 'align'.",
    )
    log_every: PositiveInt = Field(50, description="Steps between finite checks (the only host syncs besides the epoch end).")
    engine: Literal["auto", "reference"] = Field(
        "auto", description="auto: the fastest path that agrees with the reference on the device (CUDA graph on a "
                            "GPU, fused Adam and oneDNN on a CPU); reference: the plain PyTorch loop. Earlier names "
                            "'eager' and 'fast' mean 'reference' and 'auto'.",
    )
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast of the matrix products (engine 'auto' only).")
    compile: bool = Field(False, description="torch.compile the training step (engine 'auto' only).")

    @field_validator("engine", mode="before")
    @classmethod
    def _legacy_engine(cls, engine: Any) -> Any:
        return LEGACY_ENGINES.get(engine, engine) if isinstance(engine, str) else engine

    @field_validator("warmup", mode="before")
    @classmethod
    def _legacy_warmup(cls, warmup: Any) -> Any:
        if not isinstance(warmup, dict):
            return warmup
        out = {}
        for key, value in warmup.items():
            family = LEGACY_WARMUP_KEYS.get(key, key)
            if family in out:
                raise ValueError(f"{key!r} and {family!r} name the same loss family; give one")
            out[family] = value
        return out

    @model_validator(mode="after")
    def _check_engine(self) -> "TrainConfig":
        if self.engine == "reference" and (self.precision != "fp32" or self.compile):
            raise ValueError("precision 'bf16' and compile need engine 'auto'")
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
    losses: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Loss family -> its options (e.g. {'contrastive_align': {'temperature': "
                                          "0.1}}), validated by the family's own options model. Default: none.")

    @model_serializer(mode="wrap")
    def _drop_empty_losses(self, handler):
        """Without loss options the dump is the one of earlier releases (checkpoints, config
        hashes and resume fingerprints unchanged)."""
        out = handler(self)
        if isinstance(out, dict) and not out.get("losses"):
            out.pop("losses", None)
        return out

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
            "warmup": {k: v.model_dump(exclude_none=True) for k, v in t.warmup.items()},
        },
        **({"losses": {k: dict(v) for k, v in recipe.losses.items()}} if recipe.losses else {}),
    }


def merge_tables(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, tables recursively (a new dict; neither argument changes)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge_tables(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
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
    training = overrides.get("training")
    if isinstance(training, dict) and isinstance(training.get("warmup"), dict):  # earlier key names
        warmup = {LEGACY_WARMUP_KEYS.get(k, k): v for k, v in training["warmup"].items()}
        if len(warmup) < len(training["warmup"]):
            raise ConfigError("config: key 'training.warmup': 'beta'/'kl' or 'distance'/'align' name the same loss family; give one")
        overrides["training"] = {**training, "warmup": warmup}
    merged = merge_tables(base, overrides)
    given = (overrides.get("training") or {}).get("warmup") if isinstance(overrides.get("training"), dict) else None
    if isinstance(given, dict) and isinstance(merged["training"].get("warmup"), dict):
        merged["training"]["warmup"].update(given)  # a family's schedule is replaced whole, never mixed with the recipe's
    try:
        return AlignerConfig.model_validate(merged)
    except ValidationError as exc:
        from .modality import format_validation_error

        raise ConfigError(format_validation_error("config", exc)) from None
