"""Synthetic stand-ins for the benchmarks, and a writer of the xlsa17 file layout.

`synthetic_like` builds an `AlignmentData` with the layout of a real benchmark
(class counts, seen/unseen classes, split sizes, embedding dimensions; optionally scaled down).
Every class has a hidden latent code ``z_c``; each class embedding is a sparse, non-negative,
L2-normalised function of it (like CUB's ``att``), and image features are a fixed random
two-layer ReLU network of ``z_c`` plus class-specific noise (not explained by the embedding) and
per-sample noise, non-negative like ResNet features. Unseen classes are therefore predictable
from their embeddings, but not trivially. The same seed gives identical arrays.

`write_xlsa17_layout` writes any `AlignmentData` as ``res101.mat`` /
``att_splits.mat`` (/ ``sent_splits.mat``) exactly as xlsa17 stores them (1-based, D x N), so the
real reader can be exercised end to end.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data import AlignmentData
from ..errors import ConfigError, DataError
from .cards import DatasetCard, load_card
from .matfile import strings_cell, write_mat
from .xlsa17 import ATT_SPLITS, RES101, SENT_SPLITS, SPLIT_KEYS

LATENT_RANK = 16  #: dimension of the hidden class code
_HIDDEN = 64  #: hidden width of the feature network
_CLASS_NOISE = 0.5  #: class-specific hidden offset the embeddings cannot explain
_SAMPLE_NOISE = 1.3  #: per-image hidden noise
_ISO_NOISE = 0.3  #: per-image noise in feature space


def synthetic_like(
    dataset: str | DatasetCard,
    seed: int,
    feature_dim: int = 2048,
    num_samples: int | None = None,
) -> AlignmentData:
    """A synthetic dataset with the layout of ``dataset`` (a card name or `DatasetCard`).

    Args:
        dataset: e.g. ``"CUB"``; class counts, split sizes and embedding dims come from its card.
        seed: seeds a `numpy.random.Generator`; same seed, identical arrays.
        feature_dim: image feature dimension (2048 like ResNet-101).
        num_samples: total images (default: the card's ``num_images``); split sizes are scaled
            proportionally, keeping every class and at least one trainval image per seen class.
    """
    card = load_card(dataset) if isinstance(dataset, str) else dataset
    rng = np.random.default_rng(seed)
    labels, splits = _layout(card, rng, num_samples)
    c = card.num_classes
    z = rng.standard_normal((c, LATENT_RANK))
    class_features = {key: _embedding(z, spec.dim, rng) for key, spec in card.class_features.items()}
    features = _image_features(z, labels, feature_dim, rng)
    data = AlignmentData(
        labels=labels,
        class_names=[f"{card.name.lower()}_class_{i + 1:03d}" for i in range(c)],
        sample_features={"features": features},
        class_features=class_features,
        splits=splits,
        name=f"synthetic_{card.name}",
        meta={"source": "synthetic", "like": card.name, "seed": seed, "feature_dim": feature_dim,
              "has_class_names": card.has_class_names},
    )
    return data.validate()


def write_xlsa17_layout(data: AlignmentData, root: str | os.PathLike, name: str | None = None) -> Path:
    """Write ``data`` to ``<root>/<name>/`` as xlsa17 files; returns the dataset folder.

    ``res101.mat``: ``features`` D x N (float32), ``labels`` N x 1 (1-based, double),
    ``image_files``. ``att_splits.mat``: ``att`` = ``class_features["attributes"]`` as dim x C,
    ``original_att``, 1-based ``*_loc`` (N x 1), ``allclasses_names`` (omitted when
    ``meta["has_class_names"]`` is False). ``sent_splits.mat`` when ``"sentences"`` exists.
    """
    if "attributes" not in data.class_features or "features" not in data.sample_features:
        raise DataError(f"{data.name}: xlsa17 layout needs sample feature 'features' and class feature 'attributes'")
    folder = Path(root) / (name or data.name)
    n = data.num_samples
    index_type = np.uint16 if n < 2**16 else np.uint32
    locs = {SPLIT_KEYS[s]: (np.asarray(idx) + 1).astype(index_type).reshape(-1, 1)
            for s, idx in data.splits.items() if s in SPLIT_KEYS}
    names = strings_cell(data.class_names)
    with_names = {"allclasses_names": names} if data.meta.get("has_class_names", True) else {}
    files = [f"{data.class_names[y]}/image_{i + 1:06d}.jpg" for i, y in enumerate(data.labels)]
    write_mat(folder / RES101, {
        "features": np.ascontiguousarray(data.sample_features["features"].T),
        "labels": (np.asarray(data.labels, dtype=np.float64) + 1).reshape(-1, 1),
        "image_files": strings_cell(files),
    })
    att = data.class_features["attributes"].T.astype(np.float64)
    write_mat(folder / ATT_SPLITS, {"att": att, "original_att": att.copy(), **locs, **with_names})
    if "sentences" in data.class_features:
        write_mat(folder / SENT_SPLITS, {"att": data.class_features["sentences"].T.astype(np.float64), **locs, **with_names})
    return folder


def _layout(card: DatasetCard, rng: np.random.Generator, num_samples: int | None) -> tuple[np.ndarray, dict]:
    """0-based labels (grouped by class) and splits with the card's sizes, scaled to ``num_samples``."""
    s, u = card.num_seen_classes, card.num_unseen_classes
    tv, ts, tu = card.splits.trainval, card.splits.test_seen, card.splits.test_unseen
    if num_samples is not None:  # scale the three GZSL splits to sum to num_samples exactly
        tv, ts, tu = (int(v) for v in _allocate(int(num_samples), np.array([tv, ts, tu], dtype=float), minimum=0))
    if tv < s or ts < 1 or tu < u:
        raise ConfigError(
            f"num_samples={num_samples} is too small for a {card.name}-like layout: need at least one trainval "
            f"image per seen class ({s}), one test_seen image and one test image per unseen class ({u})"
        )
    perm = rng.permutation(card.num_classes)
    seen, unseen = np.sort(perm[:s]), np.sort(perm[s:])
    m = 2 if tv + ts >= 2 * s else 1  # images per seen class, at least
    has_val = card.splits.train is not None and card.splits.val is not None
    if has_val:
        k_val = card.num_val_classes or max(1, round(s * card.splits.val / (card.splits.train + card.splits.val)))
        val_classes = rng.choice(seen, size=k_val, replace=False)
        is_val = np.isin(seen, val_classes)
        n_train = round((tv + ts) * card.splits.train / (card.splits.train + card.splits.val))
        n_train = min(max(n_train, m * int((~is_val).sum())), tv + ts - m * k_val)
        per_seen = np.zeros(s, dtype=np.int64)
        per_seen[~is_val] = _allocate(n_train, rng.gamma(4.0, size=int((~is_val).sum())), minimum=m)
        per_seen[is_val] = _allocate(tv + ts - n_train, rng.gamma(4.0, size=k_val), minimum=m)
    else:
        is_val = np.zeros(s, dtype=bool)
        per_seen = _allocate(tv + ts, rng.gamma(4.0, size=s), minimum=m)
    ts_per = _allocate(ts, (per_seen - 1).astype(float), minimum=0, cap=per_seen - 1)
    per_unseen = _allocate(tu, rng.gamma(4.0, size=u), minimum=1)
    counts = np.zeros(card.num_classes, dtype=np.int64)
    counts[seen], counts[unseen] = per_seen, per_unseen
    labels = np.repeat(np.arange(card.num_classes), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("trainval", "test_seen", "test_unseen", "train", "val")}
    for j, cls in enumerate(seen):
        idx = starts[cls] + rng.permutation(counts[cls])
        parts["test_seen"].append(idx[: ts_per[j]])
        parts["trainval"].append(idx[ts_per[j]:])
        parts["val" if is_val[j] else "train"].append(idx)
    for cls in unseen:
        parts["test_unseen"].append(starts[cls] + np.arange(counts[cls]))
    splits = {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items() if v and (has_val or k not in ("train", "val"))}
    return labels.astype(np.int64), splits


def _allocate(total: int, weights: np.ndarray, minimum: int, cap: np.ndarray | None = None) -> np.ndarray:
    """Split ``total`` into integers >= ``minimum`` proportional to ``weights`` (largest remainder)."""
    k = len(weights)
    rest = total - minimum * k
    if rest < 0:
        raise ConfigError(f"cannot split {total} images over {k} classes with at least {minimum} each")
    w = np.asarray(weights, dtype=float)
    w = w / w.sum() if w.sum() > 0 else np.full(k, 1.0 / k)
    share = rest * w
    out = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - out), kind="stable")
    for i in order[: rest - int(out.sum())]:
        out[i] += 1
    out += minimum
    if cap is not None and (out > np.maximum(cap, minimum)).any():
        raise ConfigError("internal allocation exceeded a class's capacity")  # pragma: no cover
    return out


def _embedding(z: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Sparse non-negative low-rank embedding of the class codes, rows L2-normalised (float32)."""
    c = z.shape[0]
    low_rank = z @ rng.standard_normal((z.shape[1], dim)) / np.sqrt(z.shape[1])
    sparse = (rng.random((c, dim)) < 0.03) * rng.exponential(0.5, size=(c, dim))
    emb = np.maximum(low_rank - 0.5, 0.0) + sparse + 1e-3
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def _image_features(z: np.ndarray, labels: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Fixed random 2-layer ReLU net of the class code, with class and sample noise, ReLU'd.

    Noise enters the hidden layer (so its effect hardly depends on ``dim``), plus a small
    isotropic term in feature space.
    """
    w1 = rng.standard_normal((z.shape[1], _HIDDEN)) / np.sqrt(z.shape[1])
    w2 = (rng.standard_normal((_HIDDEN, dim)) / np.sqrt(_HIDDEN)).astype(np.float32)
    hidden = np.maximum(z @ w1 + 0.1, 0.0) + _CLASS_NOISE * rng.standard_normal((z.shape[0], _HIDDEN))
    per_sample = hidden.astype(np.float32)[labels]
    per_sample += np.float32(_SAMPLE_NOISE) * rng.standard_normal(per_sample.shape, dtype=np.float32)
    feats = per_sample @ w2
    for start in range(0, feats.shape[0], 4096):  # in blocks: bounded extra memory
        block = feats[start:start + 4096]
        block += np.float32(_ISO_NOISE) * rng.standard_normal(block.shape, dtype=np.float32)
        np.maximum(block, 0.0, out=block)
    return feats
