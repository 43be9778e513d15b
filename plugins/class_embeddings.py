"""Built-in plugin: per-class side information (attribute vectors, sentence class embeddings).

Used as given (CADA-VAE applies no normalisation; CUB's attributes are already L2-normalised).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

import mmalign
from mmalign.modality import FeatureModality, Granularity


class ClassAttributes(FeatureModality):
    """Per-class attribute vectors (xlsa17 ``att``); data key ``"attributes"``; hidden (1450, 665)."""

    kind: ClassVar[str] = "attributes"
    granularity: ClassVar[Granularity] = "class"

    class Options(FeatureModality.Options):
        source: str | None = Field("attributes", description="Key of the per-class array.")


class SentenceEmbeddings(FeatureModality):
    """Per-class sentence embeddings (CUB's 1024-d Reed et al. ``sent_splits.mat``); data key
    ``"sentences"``; hidden (1450, 665)."""

    kind: ClassVar[str] = "sentences"
    granularity: ClassVar[Granularity] = "class"

    class Options(FeatureModality.Options):
        source: str | None = Field("sentences", description="Key of the per-class array.")


@mmalign.hookimpl
def register_modalities(register):
    register(ClassAttributes())
    register(SentenceEmbeddings())
