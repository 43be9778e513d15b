"""Checks a command runs on everything it was asked for before the first run starts.

A command given several shot counts, seeds or settings must not fail part-way on something it
could have seen at the start (the second shot count has too few images, the last seed is out of
range, the recipe has no classifier epochs for one of them): these helpers check them all, cheaply,
without training or evaluating anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from .data import AlignmentData
from .errors import ConfigError
from .modality import Modality
from .recipes import DEFAULT_RECIPE

if TYPE_CHECKING:
    from .protocols.policies import EpochPolicy
    from .recipes import Recipe


def data_files(data: AlignmentData) -> list[Path]:
    """The files ``data`` was read from (empty for generated data)."""
    files = data.meta.get("files", {})
    return [Path(info["path"]) for info in files.values() if isinstance(info, dict) and info.get("path")]


def data_dims(modalities: Mapping[str, Modality], data: AlignmentData) -> dict[str, int]:
    """Each modality's input dimension as far as the data tells it without encoding anything
    (text modalities, whose dimension is the text encoder's, are left out)."""
    dims = {}
    for name, modality in modalities.items():
        for table in (data.sample_features, data.class_features):
            array = table.get(modality.source)
            if array is not None and getattr(array, "ndim", 0) == 2:
                dims[name] = int(array.shape[1])
    return dims


def positive(value: int | None, flag: str) -> None:
    """``flag`` must be at least 1 when given."""
    if value is not None and value < 1:
        raise ConfigError(f"{flag} must be at least 1, got {value}")


def check_shot_counts(shots: Sequence[int]) -> None:
    """Shot counts are non-negative and listed once each (the one check of the values; whether
    the data has enough images per class is `check_evaluations`')."""
    if any(s < 0 for s in shots):
        raise ConfigError(f"--shots must be non-negative, got {' '.join(map(str, shots))}")
    if len(set(shots)) != len(shots):
        raise ConfigError(f"--shots lists a count twice: {' '.join(map(str, shots))}")


def check_evaluations(
    data: AlignmentData,
    setting: str,
    shots: Iterable[int],
    seeds: Iterable[int],
    policy: "EpochPolicy | str",
    dataset_name: str,
    recipe: "Recipe | str" = DEFAULT_RECIPE,
    max_epochs: int = 100,
) -> None:
    """Every (shots, seed) evaluation of the latent-classifier protocol could run: shot counts
    valid and leaving test images in every unseen class, a latent count in the recipe, the
    policy's epochs (a classifier-epoch table entry for ``fixed``), ``max_epochs >= 1``. Raises
    `ConfigError` for the first one that could not."""
    from .protocols.fewshot import fewshot_split
    from .protocols.latents import latents_key
    from .protocols.policies import make_policy
    from .recipes import load_recipe

    shots, seeds = list(shots), list(seeds)
    positive(max_epochs, "--max-classifier-epochs")
    check_shot_counts(shots)
    rec, policy = load_recipe(recipe), make_policy(policy)
    latents = rec.classifier.latents
    for k in shots:
        key = latents_key(setting, k)
        if key not in latents:
            raise ConfigError(f"recipe {rec.describe()} has no classifier latent counts for {key!r} (--setting {setting}, "
                              f"--shots {k})")
        policy.check(rec, dataset_name, setting, k)
        for seed in seeds:
            try:
                fewshot_split(data, k, seed)
            except ConfigError as exc:
                raise ConfigError(f"--shots {k}: {exc}") from None
