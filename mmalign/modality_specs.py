"""Modalities from what a user or a config gives (an instance, a registered key, a dict of kind,
name and options), with their network sizes and options from the recipe."""

from __future__ import annotations

from pydantic import ValidationError

from .errors import ConfigError, format_validation_error
from .modality import Modality
from .plugins import PluginCatalog
from .recipes import Recipe, load_recipe

ModalitySpec = Modality | str | dict


def build_modality(spec: ModalitySpec, catalog: PluginCatalog) -> Modality:
    """A modality from an instance, a modality key, or ``{"kind": ..., "name": ..., **options}``."""
    if isinstance(spec, Modality):
        spec.check_options()
        return spec
    if isinstance(spec, str):
        return catalog.create(spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if not isinstance(kind, str):
            raise ConfigError(f"modality spec {spec!r} needs a 'kind' (a registered modality key)")
        name = spec.pop("name", None)
        options = spec.pop("options", {})
        if not isinstance(options, dict):
            raise ConfigError(f"modality {kind!r}: key 'options' must be a table of options, got {type(options).__name__}")
        return catalog.create(kind, name=name, options={**options, **spec})
    raise ConfigError(f"a modality must be a Modality, a modality key or a dict, got {type(spec).__name__}")


def apply_recipe_sizes(modality: Modality, recipe: Recipe | str | None) -> Modality:
    """The one rule for a modality's network sizes: an option the user set explicitly wins, then
    the recipe's size for the modality's kind (``[model.hidden]``, e.g. CADA's ``image_features =
    [1560, 1660]``), then the plugin's own ``Options`` default. Returns ``modality`` (updated in place)."""
    options = modality.options
    recipe = None if recipe is None else load_recipe(recipe)
    if recipe is not None and "hidden" in type(options).model_fields and "hidden" not in options.model_fields_set:
        hidden = recipe.hidden_for(modality.kind)
        if hidden is not None:
            modality.options = options.model_copy(update={"hidden": hidden})
    extra = recipe.modality_options.get(modality.kind, {}) if recipe is not None else {}
    if extra:  # the recipe's other options for this kind, under the ones the user set
        given = modality.options.model_dump(exclude_unset=True)
        try:
            validated = type(modality.options).model_validate({**modality.options.model_dump(), **extra, **given})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(f"recipe {recipe.name!r}: modality_options.{modality.kind}",
                                                      exc)) from None
        modality.options = validated
    return modality
