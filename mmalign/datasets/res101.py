"""``res101.mat`` of the xlsa17 release: ResNet-101 image features and 1-based labels.

Kept apart from `.xlsa17` so that the feature cache (`.cache`) and the dataset reader can
both use it without importing each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .matfile import cell_strings, check_finite_matrix, index_vector, numeric_array, read_mat, sha256_file

RES101 = "res101.mat"


@dataclass
class Res101:
    """Image features of ``res101.mat``: ``features`` (N, D) float32, ``labels`` (N,) 0-based."""

    features: np.ndarray
    labels: np.ndarray
    path: Path
    sha256: str
    image_files: list[str] | None = None


def read_res101(path: str | os.PathLike, *, image_files: bool = False) -> Res101:
    """Read ``res101.mat``: features D x N -> (N, D) float32, 1-based labels -> 0-based int64."""
    path = Path(path)
    want = ["image_files"] if image_files else []
    raw = read_mat(path, ["features", "labels"], want,
                   expected={"features": "D x N float matrix", "labels": "N x 1 1-based class index"})
    labels = index_vector(raw["labels"], path, "labels")
    n = labels.size
    if labels.min() < 1:
        raise DataError(
            f"{path}: key 'labels' looks 0-based (smallest label {labels.min()}); xlsa17 labels are "
            "1-based (1..C): add 1 before saving"
        )
    feats = numeric_array(raw["features"], path, "features")
    if feats.ndim != 2:
        raise DataError(f"{path}: key 'features' should be a D x N matrix, got shape {feats.shape}")
    rows, cols = feats.shape
    if cols == n:
        feats = feats.T
    elif rows == n:
        raise DataError(
            f"{path}: key 'features' is stored N x D ({rows} x {cols}, one row per image) but xlsa17 "
            f"stores D x N (one column per image; labels has N = {n} entries): the matrix is "
            "transposed - save features.T"
        )
    else:
        raise DataError(
            f"{path}: key 'features' has shape {feats.shape} but 'labels' has {n} entries; "
            f"expected D x {n} (one column per image)"
        )
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    check_finite_matrix(feats, path, "features", ("image", "feature"))
    files = cell_strings(raw["image_files"], path, "image_files") if "image_files" in raw else None
    if files is not None and len(files) != n:
        raise DataError(f"{path}: key 'image_files' has {len(files)} entries, expected {n} (one per label)")
    return Res101(feats, labels - 1, path, sha256_file(path), files)
