"""The one rule for a modality's network sizes: explicit user option > recipe > plugin default."""

from __future__ import annotations

import mmalign


class Audio(mmalign.FeatureModality):
    kind = "audio_sizes_test"

    class Options(mmalign.FeatureModality.Options):
        hidden: tuple[int, int] = (1024, 512)


class WideImage(mmalign.FeatureModality):
    """A plugin's own modality of a kind the recipe has sizes for."""

    kind = "image_features"

    class Options(mmalign.FeatureModality.Options):
        hidden: tuple[int, int] = (64, 64)


def hidden_of(specs, **config):
    aligner = mmalign.Aligner(specs, {"device": "cpu", **config})
    return {name: m.options.hidden for name, m in aligner.modalities.items()}


def test_options_explicit_user_size_beats_the_recipe():
    sizes = hidden_of([{"kind": "image_features", "name": "img", "hidden": (10, 20)}, {"kind": "attributes", "name": "att"}])
    assert sizes == {"img": (10, 20), "att": (1450, 665)}  # CADA's attribute sizes from the recipe


def test_options_recipe_size_beats_the_plugin_default():
    assert hidden_of([WideImage(name="img"), Audio(name="aud")]) == {"img": (1560, 1660), "aud": (1024, 512)}


def test_options_plugin_default_without_a_recipe_entry_or_recipe():
    assert hidden_of([WideImage(name="img"), Audio(name="aud")], recipe=None) == {"img": (64, 64), "aud": (1024, 512)}
    assert hidden_of([WideImage(name="img", hidden=(8, 8)), Audio(name="aud", hidden=(4, 4))]) == {
        "img": (8, 8), "aud": (4, 4)}
