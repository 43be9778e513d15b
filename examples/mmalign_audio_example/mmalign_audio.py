"""An mmalign modality plugin: per-sample audio embeddings (any dimension)."""

from typing import Literal

import mmalign

__version__ = "0.1.0"


class AudioEmbedding(mmalign.FeatureModality):
    """One audio embedding per sample, read from ``data.sample_features["audio"]``."""

    kind = "audio"
    granularity = "sample"

    class Options(mmalign.FeatureModality.Options):
        source: str | None = "audio"
        normaliser: Literal["none", "minmax", "l2"] = "minmax"
        hidden: tuple[int, int] = (256, 256)


@mmalign.hookimpl
def register_modalities(register):
    register(AudioEmbedding())
