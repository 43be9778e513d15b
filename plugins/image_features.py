"""Built-in plugin: precomputed CNN image features (per sample), MinMax-scaled as in CADA-VAE."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

import mmalign
from mmalign.modality import FeatureModality, Granularity


class ImageFeatures(FeatureModality):
    """Per-image feature vectors of any dimension (ResNet-101 2048-d in xlsa17, or ViT, CLIP...).

    Defaults: hidden (1560, 1660), MinMax normalisation fitted on the training split, data key
    ``"features"``.
    """

    kind: ClassVar[str] = "image_features"
    granularity: ClassVar[Granularity] = "sample"

    class Options(FeatureModality.Options):
        source: str | None = Field("features", description="Key of the per-sample feature array.")
        normaliser: Literal["none", "minmax", "l2", "center_l2"] = Field("minmax", description="Fitted on the training split.")
        hidden: tuple[PositiveInt, PositiveInt] = Field((1560, 1660), description="(encoder, decoder) hidden sizes.")


@mmalign.hookimpl
def register_modalities(register):
    register(ImageFeatures())
