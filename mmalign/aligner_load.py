"""Rebuild an `Aligner` from a checkpoint directory (``config.json``,
``model.safetensors``, ``normalisers.safetensors``, ``history.json``): modalities from their
registered keys, the config and the recipe it was trained with, strict loading of every tensor."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pydantic import ValidationError

from .checkpoint import MODEL, NORMALISERS, check_finite, check_state, load_tensors, read_config
from .config import AlignerConfig
from .errors import CheckpointError, ConfigError, MmalignError, PluginError, format_validation_error
from .memory import check_model_memory
from .modality import Modality
from .plugins import get_catalog
from .recipes import Recipe
from .records.history import read_history


def load_aligner(cls: type, path: str | Path, modalities: Sequence[Modality] = (), device: str | None = None) -> Any:
    """The aligner (of class ``cls``) saved at ``path``. ``modalities`` supplies instances of
    unregistered (user-code) modality classes, matched by name; ``device`` replaces the saved one."""
    path = Path(path)
    cfg = read_config(path)
    catalog = get_catalog()
    given = {m.name: m for m in modalities}
    specs: list[Modality] = []
    for entry in cfg["modalities"]:
        try:
            kind, name, options = entry["kind"], entry["name"], entry["options"]
            if name in given:
                specs.append(type(given[name])(name=name, **options))
            else:
                specs.append(catalog.create(kind, name=name, options=options))
        except PluginError:
            raise CheckpointError(
                f"{path}: modality {entry.get('name')!r} needs the modality key {entry.get('kind')!r} "
                f"(plugin {entry.get('plugin')!r}), which no installed plugin registers"
            ) from None
        except (KeyError, TypeError):
            raise CheckpointError(f"{path / 'config.json'}: malformed modality entry {entry!r}") from None
        except ConfigError as exc:
            raise CheckpointError(f"{path / 'config.json'}: {exc}") from None
    aligner_cfg = dict(cfg["aligner"])
    if device is not None:
        aligner_cfg["device"] = device
    try:
        config = AlignerConfig.model_validate(aligner_cfg)
    except ValidationError as exc:
        raise CheckpointError(format_validation_error(f"{path / 'config.json'}: aligner", exc)) from None
    recipe = None
    if "recipe" in cfg:
        try:
            recipe = Recipe.model_validate(cfg["recipe"])
        except ValidationError as exc:
            raise CheckpointError(format_validation_error(f"{path / 'config.json'}: recipe", exc)) from None
    elif config.recipe is not None:  # checkpoints before the recipe was saved: the registry's
        recipe = config.recipe
    try:
        aligner = cls(specs, config=config, recipe=recipe, catalog=catalog)
    except MmalignError as exc:
        raise CheckpointError(f"{path / 'config.json'}: {exc}") from None
    dims = {e["name"]: e.get("dim") for e in cfg["modalities"]}
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims.values()):
        raise CheckpointError(f"{path / 'config.json'}: every modality needs a positive integer 'dim', got {dims}")
    check_model_memory(aligner.modalities, dims, config.latent_size, aligner.device, where=str(path / "config.json"))
    classes = cfg.get("num_classes", 0)
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 0:
        raise CheckpointError(f"{path / 'config.json'}: key 'num_classes' must be a non-negative integer, got {classes!r}")
    aligner.num_classes = classes
    model = aligner.build(dims)
    state = load_tensors(path / MODEL)
    check_state(path / MODEL, model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    model.eval()
    norm_state = load_tensors(path / NORMALISERS)
    check_finite(path / NORMALISERS, norm_state)
    for name, modality in aligner.modalities.items():
        normaliser = modality.make_normaliser()
        prefix = f"{name}."
        part = {k[len(prefix):]: v for k, v in norm_state.items() if k.startswith(prefix)}
        for key, tensor in part.items():
            if tuple(tensor.shape) != (aligner.dims[name],):
                raise CheckpointError(f"{path / NORMALISERS}: tensor {prefix + key!r} has shape "
                                      f"{tuple(tensor.shape)}, expected ({aligner.dims[name]},)")
        try:
            normaliser.load_state(part)
        except CheckpointError as exc:
            raise CheckpointError(f"{path / NORMALISERS}: modality {name!r}: {exc}") from None
        aligner.normalisers[name] = normaliser
    aligner.history = read_history(path)
    return aligner
