"""The in-memory dataset every layer above the readers works with.

Readers (xlsa17 ``.mat`` files, synthetic generators, user code) produce an `AlignmentData`:
numpy arrays for per-sample features (one row per image/sentence), per-class features (one row per
class), 0-based labels and named splits of sample indices. Modalities pick their array by ``source``
key; nothing here knows about torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError
from .mapped import MappedFeatures

#: Splits of the xlsa17 protocol. ``train``/``val`` are optional (model selection only).
REQUIRED_SPLITS = ("trainval", "test_seen", "test_unseen")


@dataclass
class AlignmentData:
    """Per-sample and per-class feature arrays with labels and named splits.

    Attributes:
        labels: ``(N,)`` int64, the 0-based class of every sample.
        class_names: one name per class; ``C = len(class_names)``.
        sample_features: source key -> ``(N, d)`` float32 array (e.g. ``"features"``).
        class_features: source key -> ``(C, d)`` float32 array (e.g. ``"attributes"``).
        splits: split name -> 0-based sample indices (``trainval``, ``test_seen``,
            ``test_unseen``, optionally ``train`` and ``val``).
        sample_masks: optional source key -> ``(N,)`` bool, False where a sample lacks that
            modality (its terms are masked out in training).
        sample_texts: source key -> ``N`` strings, one text per sample (encoded by the ``text``
            modality).
        class_texts: source key -> ``C`` entries, each a description string or a non-empty list
            of sentences (encoded, and averaged, by the ``class_text`` modality).
        name: a label for logs and results (e.g. ``"CUB"``).
        meta: provenance: file paths, hashes, warnings. Copied into results.
    """

    labels: np.ndarray
    class_names: list[str]
    sample_features: dict[str, np.ndarray] = field(default_factory=dict)
    class_features: dict[str, np.ndarray] = field(default_factory=dict)
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    sample_masks: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "data"
    meta: dict[str, Any] = field(default_factory=dict)
    sample_texts: dict[str, list[str]] = field(default_factory=dict)
    class_texts: dict[str, list[str | list[str]]] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def granularity_of(self, source: str) -> str:
        """``"sample"`` or ``"class"``: where the array named ``source`` lives."""
        if source in self.sample_features:
            return "sample"
        if source in self.class_features:
            return "class"
        raise DataError(
            f"{self.name}: no feature array named {source!r}; available: "
            f"per-sample {sorted(self.sample_features)}, per-class {sorted(self.class_features)}"
        )

    def array(self, source: str) -> np.ndarray:
        """The feature array named ``source`` (per-sample or per-class)."""
        if self.granularity_of(source) == "sample":
            return self.sample_features[source]
        return self.class_features[source]

    def classes_of(self, split: str) -> np.ndarray:
        """Sorted unique labels of the samples in ``split``."""
        return np.unique(self.labels[self.split(split)])

    @property
    def seen_classes(self) -> np.ndarray:
        """Classes of the training images (CADA: unique labels of trainval)."""
        return self.classes_of("trainval")

    @property
    def unseen_classes(self) -> np.ndarray:
        """Classes of the unseen test images."""
        return self.classes_of("test_unseen")

    def split(self, name: str) -> np.ndarray:
        if name not in self.splits:
            raise DataError(f"{self.name}: no split named {name!r}; available: {sorted(self.splits)}")
        return self.splits[name]

    def validate(self) -> "AlignmentData":
        """Check shapes, dtypes, index ranges and finiteness; raise `DataError` if off."""
        if not isinstance(self.class_names, (list, tuple)):
            raise DataError(f"{self.name}: class_names must be a list of strings, got {type(self.class_names).__name__}")
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{self.name}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
        n, c = labels.shape[0], self.num_classes
        if n and (labels.min() < 0 or labels.max() >= c):
            raise DataError(
                f"{self.name}: labels must lie in 0..{c - 1} (0-based, {c} classes), "
                f"found {labels.min()}..{labels.max()}"
            )
        for key, arr in self.sample_features.items():
            _check_matrix(self.name, key, arr, rows=n, what="samples")
        for key, arr in self.class_features.items():
            _check_matrix(self.name, key, arr, rows=c, what="classes")
        for key, mask in self.sample_masks.items():
            try:
                shape = np.shape(mask)
            except ValueError:
                shape = None
            if key not in self.sample_features or shape != (n,):
                raise DataError(f"{self.name}: sample mask {key!r} must be a ({n},) bool array of a per-sample feature")
        for key, texts in self.sample_texts.items():
            _check_texts(self, key, texts, rows=n, what="samples", groups=False)
        for key, texts in self.class_texts.items():
            _check_texts(self, key, texts, rows=c, what="classes", groups=True)
        for split in REQUIRED_SPLITS:
            if split not in self.splits:
                raise DataError(f"{self.name}: required split {split!r} is missing")
        for split, idx in self.splits.items():
            try:
                idx = np.asarray(idx)
            except ValueError:
                raise DataError(f"{self.name}: split {split!r} must be a 1-D integer index array (got nested lists)") from None
            if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
                raise DataError(f"{self.name}: split {split!r} must be a 1-D integer index array")
            if idx.size == 0:
                raise DataError(f"{self.name}: split {split!r} is empty")
            if idx.min() < 0 or idx.max() >= n:
                raise DataError(
                    f"{self.name}: split {split!r} indexes samples {idx.min()}..{idx.max()}, "
                    f"expected 0..{n - 1} (0-based)"
                )
            if np.unique(idx).size != idx.size:
                raise DataError(f"{self.name}: split {split!r} lists some samples twice")
        for a, b in (("trainval", "test_seen"), ("trainval", "test_unseen"), ("test_seen", "test_unseen")):
            overlap = np.intersect1d(self.splits[a], self.splits[b])
            if overlap.size:
                raise DataError(f"{self.name}: splits {a!r} and {b!r} share {overlap.size} samples (e.g. index {overlap[0]})")
        return self


def _check_matrix(dataset: str, key: str, arr: np.ndarray, rows: int, what: str) -> None:
    if isinstance(arr, MappedFeatures) and what == "samples":  # on disk: values checked as training streams them
        if arr.shape[0] != rows:
            raise DataError(f"{dataset}: feature {key!r} ({arr!r}) has {arr.shape[0]} rows, expected {rows} ({what})")
        return
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        raise DataError(f"{dataset}: feature {key!r} must be a 2-D array ({what} x dim), got shape {np.shape(arr)}")
    if arr.shape[0] != rows:
        raise DataError(f"{dataset}: feature {key!r} has {arr.shape[0]} rows, expected {rows} ({what})")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{dataset}: feature {key!r} must be floating point, got {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{dataset}: feature {key!r} holds NaN or Inf (first at row {bad[0]}, column {bad[1]})")


def _check_texts(data: AlignmentData, key: str, texts: Any, rows: int, what: str, groups: bool) -> None:
    kind = "sample_texts" if not groups else "class_texts"
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
        raise DataError(f"{data.name}: {kind}[{key!r}] must be a list of strings (one per {what[:-1]}), "
                        f"got {type(texts).__name__}")
    if len(texts) != rows:
        raise DataError(f"{data.name}: {kind}[{key!r}] has {len(texts)} entries, expected {rows} (one per {what[:-1]})")
    if key in data.sample_features or key in data.class_features:
        raise DataError(f"{data.name}: {kind}[{key!r}]: the name is also a feature array; modalities pick by name, "
                        "so give the texts another key")
    for i, entry in enumerate(texts):
        if isinstance(entry, str):
            continue
        if groups and isinstance(entry, (list, tuple)) and entry and all(isinstance(t, str) for t in entry):
            continue
        expected = "a string or a non-empty list of strings" if groups else "a string"
        raise DataError(f"{data.name}: {kind}[{key!r}] entry {i} must be {expected}, got {type(entry).__name__}")
