"""Built-in plugin: text encoded by a transformers model (per sample or per class).

* ``text`` (per sample): one text per sample, e.g. one sentence per row.
* ``class_text`` (per class): one description per class, given as a string or as a list of
  sentences (their vectors are averaged).

The texts are read from ``data.sample_texts[source]`` (``text``) or ``data.class_texts[source]``
(``class_text``), validated by `AlignmentData.validate`; ``data.meta["texts"][source]`` is
still read for data built before those fields existed. If the data instead holds a float array
under ``source`` (precomputed embeddings) it is used as is. Encoding
goes through `mmalign.text.TextEncoder`: bundled all-MiniLM-L6-v2 by default (install
``mmalign[minilm]``), offline (``HF_HUB_OFFLINE=1`` unless set), cached on disk in safetensors.
transformers is imported only when texts are actually encoded.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Sequence

import numpy as np
from pydantic import Field, PositiveInt

import mmalign
from mmalign.data import AlignmentData
from mmalign.errors import ConfigError, DataError
from mmalign.modality import FeatureModality, Granularity
from mmalign.text import TextEncoder


class TextModality(FeatureModality):
    """Per-sample texts (one string per sample) through a transformers encoder.

    Defaults: bundled all-MiniLM-L6-v2, mean pooling, L2-normalised 384-d vectors, hidden
    (1450, 665), no further normalisation, data key ``"text"``.
    """

    kind: ClassVar[str] = "text"
    granularity: ClassVar[Granularity] = "sample"

    class Options(FeatureModality.Options):
        source: str | None = Field("text", description="Key of the texts (or precomputed embeddings) in the data.")
        model: str | None = Field(
            None, description="Encoder: None = bundled all-MiniLM-L6-v2 (mmalign[minilm]); a local directory; or a hub id."
        )
        revision: str | None = Field(None, description="Hub revision for a hub id (ignored for directories).")
        pooling: Literal["mean", "cls"] = Field("mean", description="Token pooling: masked mean, or the first (CLS) token.")
        normalize_embeddings: bool = Field(True, description="L2-normalise each text vector.")
        max_length: PositiveInt | None = Field(None, description="Tokens per text (default: the model's, at most 512).")
        batch_size: PositiveInt = Field(64, description="Texts per forward pass.")
        device: str = Field("auto", description="Device of the text encoder: auto (CUDA if available), cpu, cuda...")
        progress: bool = Field(True, description="Show a progress bar while encoding.")
        cache: bool = Field(True, description="Cache embeddings in MMALIGN_CACHE_DIR (~/.cache/mmalign/embeddings).")
        cache_dir: str | None = Field(None, description="Cache directory overriding MMALIGN_CACHE_DIR.")
        hidden: tuple[PositiveInt, PositiveInt] = Field((1450, 665), description="(encoder, decoder) hidden sizes.")

    def __init__(self, name: str | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        self._encoder: TextEncoder | None = None

    @property
    def encoder(self) -> TextEncoder:
        """The text encoder built from the options (created on first use; loads nothing yet)."""
        if self._encoder is None:
            o = self.options
            self._encoder = TextEncoder(
                o.model, revision=o.revision, pooling=o.pooling, normalize=o.normalize_embeddings,
                max_length=o.max_length, batch_size=o.batch_size, device=o.device, progress=o.progress,
                cache=o.cache, cache_dir=o.cache_dir,
            )
        return self._encoder

    def embed(self, texts: Sequence[str] | Sequence[Sequence[str]]) -> np.ndarray:
        """Vectors of new texts, ``(len(texts), dim)`` float32: feed them to ``Aligner.encode``."""
        return self.encoder.encode(_strings(texts, self.name))

    def prepare(self, data: AlignmentData) -> np.ndarray:
        if self.source in data.sample_features or self.source in data.class_features:
            return super().prepare(data)  # precomputed embeddings
        texts = texts_of(data, self.source, self.name, self.granularity)
        rows = data.num_samples if self.granularity == "sample" else data.num_classes
        if len(texts) != rows:
            raise DataError(
                f"{data.name}: modality {self.name!r} is per-{self.granularity} and needs {rows} texts "
                f"under {self.source!r}, got {len(texts)}"
            )
        return self.embed(texts)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self._encoder is not None and self._encoder._resolved is not None:
            resolved = self._encoder.resolved
            out["text_model"] = {"name": resolved.name, "identity": resolved.identity, **self._encoder.settings()}
        return out


class ClassText(TextModality):
    """Per-class descriptions: one string, or a list of sentences averaged into one vector."""

    kind: ClassVar[str] = "class_text"
    granularity: ClassVar[Granularity] = "class"

    class Options(TextModality.Options):
        source: str | None = Field("class_text", description="Key of the per-class texts (or embeddings) in the data.")

    def embed(self, texts: Sequence[str] | Sequence[Sequence[str]]) -> np.ndarray:
        if isinstance(texts, str):
            raise ConfigError(f"modality {self.name!r}: pass a list of class descriptions, not one string")
        if all(isinstance(t, str) for t in texts):
            return self.encoder.encode(list(texts))
        groups = [[t] if isinstance(t, str) else _strings(t, self.name) for t in texts]
        return self.encoder.encode_groups(groups)


def texts_of(data: AlignmentData, source: str, owner: str, granularity: Granularity = "sample") -> list:
    """The texts stored under ``source``: ``data.sample_texts`` (per sample) or ``data.class_texts``
    (per class), else the older ``data.meta["texts"]``."""
    field = "sample_texts" if granularity == "sample" else "class_texts"
    legacy = data.meta.get("texts") if isinstance(data.meta, dict) else None
    for store in (getattr(data, field, None), legacy):
        if isinstance(store, dict) and source in store:
            return list(store[source])
    raise DataError(
        f"{data.name}: modality {owner!r} found neither texts nor an embedding array named {source!r}; "
        f"put a list of strings in data.{field}[{source!r}], or set the option 'source'"
    )


def _strings(texts: Sequence, owner: str) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError(f"modality {owner!r}: pass a list of texts, not one string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(f"modality {owner!r}: text {i} is {type(text).__name__}, expected str")
    return texts


@mmalign.hookimpl
def register_modalities(register):
    register(TextModality())
    register(ClassText())
