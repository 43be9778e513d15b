"""Reader of the xlsa17 release (Xian et al., "Zero-Shot Learning - The Good, the Bad and the Ugly").

A dataset folder holds, exactly as distributed:

- ``res101.mat``: ``features`` (D x N, one column per image; D is read from the file),
  ``labels`` (N x 1, 1-based), ``image_files`` (N x 1 cell).
- ``att_splits.mat``: ``att`` (dim x C, one column per class), ``original_att``, 1-based
  ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc``, optional ``train_loc``/``val_loc`` and
  ``allclasses_names``.
- optionally ``sent_splits.mat`` (CUB): ``att`` = the 1024-d sentence class embedding, and the
  same ``*_loc`` keys (CUB's ``train_loc``/``val_loc`` live only here in the re-saved copies).

Conversion follows the CADA-VAE reference: ``features.T``, ``labels - 1``, ``*_loc - 1``,
``att.T`` as is; float64 becomes float32. Inconsistent files raise `DataError` naming the
file, the key and what was expected versus found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import AlignmentData
from ..errors import DataError
from .matfile import cell_strings, check_finite_matrix, class_matrix, index_vector, numeric_array, read_mat, sha256_file
from .res101 import RES101, Res101, read_res101

ATT_SPLITS, SENT_SPLITS = "att_splits.mat", "sent_splits.mat"
#: split name -> key in att_splits.mat / sent_splits.mat
SPLIT_KEYS = {
    "trainval": "trainval_loc",
    "test_seen": "test_seen_loc",
    "test_unseen": "test_unseen_loc",
    "train": "train_loc",
    "val": "val_loc",
}
_REQUIRED_SPLITS = ("trainval", "test_seen", "test_unseen")
#: pairs of splits that must not share a sample (train/val are subsets of trainval + test_seen)
_DISJOINT = (
    ("trainval", "test_seen"), ("trainval", "test_unseen"), ("test_seen", "test_unseen"),
    ("train", "val"), ("train", "test_unseen"), ("val", "test_unseen"),
)


@dataclass
class ClassLevelData:
    """Class-level content of ``att_splits.mat`` (+ ``sent_splits.mat``), without image features.

    ``splits`` hold 0-based sample indices; ``class_features`` map ``"attributes"`` (and
    ``"sentences"``) to ``(C, dim)`` float32 arrays; ``meta["files"]`` has paths and sha256.
    """

    name: str
    class_names: list[str]
    class_features: dict[str, np.ndarray]
    splits: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def min_num_samples(self) -> int:
        """Smallest image count the split indices are consistent with (largest index + 1)."""
        return int(max(int(v.max()) for v in self.splits.values()) + 1)


def read_class_level(
    dataset_dir: str | os.PathLike, name: str | None = None, *, num_classes: int | None = None
) -> ClassLevelData:
    """Read ``att_splits.mat`` and, when present, ``sent_splits.mat`` of one dataset folder.

    Args:
        dataset_dir: folder holding ``att_splits.mat``.
        name: dataset label (default: the folder name).
        num_classes: used only when the file has no ``allclasses_names`` (FLO), to tell a
            transposed ``att`` from a correct one (e.g. ``labels.max() + 1`` of ``res101.mat``).
    """
    folder = Path(dataset_dir)
    att_path = folder / ATT_SPLITS
    loc_keys = [SPLIT_KEYS[s] for s in _REQUIRED_SPLITS]
    raw = read_mat(att_path, ["att", *loc_keys], ["train_loc", "val_loc", "allclasses_names"],
                   expected={"att": "dim x C class embedding", **{k: "1-based index vector" for k in loc_keys}})
    names = cell_strings(raw["allclasses_names"], att_path, "allclasses_names") if "allclasses_names" in raw else None
    attributes = class_matrix(raw["att"], att_path, "att", len(names) if names else num_classes, exact=bool(names))
    c = attributes.shape[0]
    class_names = names or [f"class_{i + 1:03d}" for i in range(c)]
    splits = {s: index_vector(raw[k], att_path, k, one_based=True) - 1 for s, k in SPLIT_KEYS.items() if k in raw}
    origin = {s: att_path for s in splits}
    files = {ATT_SPLITS: {"path": str(att_path), "sha256": sha256_file(att_path)}}
    class_features = {"attributes": attributes}
    sent_path = folder / SENT_SPLITS
    if sent_path.exists():
        sraw = read_mat(sent_path, ["att"], [*SPLIT_KEYS.values(), "allclasses_names"],
                        expected={"att": "dim x C sentence class embedding"})
        class_features["sentences"] = class_matrix(sraw["att"], sent_path, "att", c, exact=True)
        if names and "allclasses_names" in sraw and cell_strings(sraw["allclasses_names"], sent_path, "allclasses_names") != names:
            raise DataError(f"{sent_path}: key 'allclasses_names' differs from {att_path.name}'s (class order must match)")
        for s, k in SPLIT_KEYS.items():
            if k not in sraw:
                continue
            idx = index_vector(sraw[k], sent_path, k, one_based=True) - 1
            if s not in splits:
                splits[s], origin[s] = idx, sent_path
            elif not np.array_equal(splits[s], idx):
                raise DataError(
                    f"{sent_path}: key {k!r} ({idx.size} indices) differs from {k!r} in {att_path} "
                    f"({splits[s].size} indices); both files must describe the same split"
                )
        files[SENT_SPLITS] = {"path": str(sent_path), "sha256": sha256_file(sent_path)}
    check_splits(splits, origin)
    meta = {"source": "xlsa17", "dataset_dir": str(folder), "files": files,
            "split_files": {s: p.name for s, p in origin.items()}}
    return ClassLevelData(name or folder.name, class_names, class_features, splits, meta)


def read_xlsa17(
    dataset_dir: str | os.PathLike,
    name: str | None = None,
    *,
    use_cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> AlignmentData:
    """Load one xlsa17 dataset folder (any D, any number of classes) into `AlignmentData`.

    Args:
        dataset_dir: folder with ``res101.mat`` and ``att_splits.mat`` (+ ``sent_splits.mat``).
        name: dataset label (default: the folder name).
        use_cache: read ``res101.mat`` through the safetensors cache (see `.cache`).
        cache_dir: where the cache lives (default: beside the file if writable, else the user cache).
    """
    folder = Path(dataset_dir)
    res_path = folder / RES101
    if use_cache:
        from .cache import cached_res101

        res = cached_res101(res_path, cache_dir=cache_dir)
    else:
        res = read_res101(res_path)
    cl = read_class_level(folder, name, num_classes=int(res.labels.max()) + 1)
    labels, c, n = res.labels, cl.num_classes, res.labels.size
    if labels.max() >= c:
        raise DataError(
            f"{res_path}: key 'labels' goes up to {labels.max() + 1} (1-based) but {folder / ATT_SPLITS} "
            f"has {c} classes (columns of 'att'); labels must lie in 1..{c}"
        )
    empty = np.flatnonzero(np.bincount(labels, minlength=c) == 0)
    if empty.size:
        shown = ", ".join(f"{i + 1} ({cl.class_names[i]})" for i in empty[:5])
        raise DataError(
            f"{res_path}: {empty.size} class(es) have no images in 'labels' (1-based: {shown}); "
            f"every one of the {c} classes of {ATT_SPLITS} needs at least one image"
        )
    check_splits(cl.splits, {s: folder / f for s, f in cl.meta["split_files"].items()}, num_samples=n)
    seen = np.unique(labels[cl.splits["trainval"]])
    both = np.intersect1d(seen, labels[cl.splits["test_unseen"]])
    if both.size:
        raise DataError(
            f"{folder / ATT_SPLITS}: test_unseen_loc holds images of {both.size} class(es) that also have "
            f"trainval_loc images (e.g. class {both[0] + 1}, 1-based); unseen classes must have no training images"
        )
    stray = np.setdiff1d(labels[cl.splits["test_seen"]], seen)
    if stray.size:
        raise DataError(
            f"{folder / ATT_SPLITS}: test_seen_loc holds images of {stray.size} class(es) with no trainval_loc "
            f"images (e.g. class {stray[0] + 1}, 1-based); seen test classes must be training classes"
        )
    meta = dict(cl.meta)
    meta["files"] = {RES101: {"path": str(res_path), "sha256": res.sha256}, **cl.meta["files"]}
    meta["feature_dim"] = int(res.features.shape[1])
    data = AlignmentData(
        labels=labels, class_names=cl.class_names, sample_features={"features": res.features},
        class_features=cl.class_features, splits=cl.splits, name=cl.name, meta=meta,
    )
    return data.validate()


def check_splits(
    splits: dict[str, np.ndarray], origin: dict[str, Path], num_samples: int | None = None
) -> None:
    """Raise `DataError` on a missing, empty, duplicated, out-of-range or overlapping split.

    ``splits`` hold 0-based indices; ``origin`` names the file each came from (for messages).
    """
    for s in _REQUIRED_SPLITS:
        if s not in splits:
            raise DataError(f"{origin.get('trainval', 'att_splits.mat')}: missing key {SPLIT_KEYS[s]!r} (1-based index vector)")
    for s, idx in splits.items():
        where, key = origin.get(s, "?"), SPLIT_KEYS.get(s, s)
        if idx.size == 0:
            raise DataError(f"{where}: key {key!r} is empty; every split needs at least one image")
        if num_samples is not None and idx.max() >= num_samples:
            raise DataError(
                f"{where}: key {key!r} holds index {idx.max() + 1} (1-based) but res101.mat has only "
                f"{num_samples} images; indices must lie in 1..{num_samples}"
            )
        uniq, counts = np.unique(idx, return_counts=True)
        if uniq.size != idx.size:
            raise DataError(f"{where}: key {key!r} lists index {uniq[counts > 1][0] + 1} (1-based) more than once")
    for a, b in _DISJOINT:
        if a in splits and b in splits:
            both = np.intersect1d(splits[a], splits[b])
            if both.size:
                raise DataError(
                    f"{origin[a]}: splits {SPLIT_KEYS[a]!r} and {SPLIT_KEYS[b]!r} share {both.size} images "
                    f"(e.g. 1-based index {both[0] + 1}); they must be disjoint"
                )
