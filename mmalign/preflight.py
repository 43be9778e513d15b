"""Checks a command runs on everything it was asked for before the first run starts.

A command given several shot counts, seeds or settings must not fail part-way on something it
could have seen at the start (the second shot count has too few images, the last seed is out of
range, the recipe has no classifier epochs for one of them): these helpers check them all, cheaply,
without training or evaluating anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from .data import AlignmentData
from .errors import ConfigError
from .modality import Modality


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


def check_evaluations(
    data: AlignmentData,
    setting: str,
    shots: Iterable[int],
    seeds: Iterable[int],
    policy: str,
    dataset_name: str,
    recipe: str = "cada_vae",
    max_epochs: int = 100,
) -> None:
    """Every (shots, seed) evaluation of the latent-classifier protocol could run: shots
    non-negative and leaving test images in every unseen class, a latent count in the recipe, a
    classifier-epoch table entry for policy ``fixed``, ``max_epochs >= 1``. Raises
    :class:`ConfigError` for the first one that could not."""
    from .protocols.fewshot import fewshot_split
    from .protocols.latents import latents_key
    from .protocols.policies import fixed_epochs
    from .recipes import load_recipe

    shots, seeds = list(shots), list(seeds)
    if max_epochs < 1:
        raise ConfigError(f"--max-classifier-epochs must be at least 1, got {max_epochs}")
    negative = [k for k in shots if k < 0]
    if negative:
        raise ConfigError(f"--shots must be non-negative, got {negative[0]}")
    latents = load_recipe(recipe).classifier.latents
    for k in shots:
        key = latents_key(setting, k)
        if key not in latents:
            raise ConfigError(f"recipe {recipe!r} has no classifier latent counts for {key!r} (--setting {setting}, --shots {k})")
        if policy == "fixed":
            fixed_epochs(dataset_name, setting, k, recipe)
        for seed in seeds:
            fewshot_split(data, k, seed)
