"""Policy ``val``'s data: a validation view built from the ``train`` and ``val`` splits only, and
the epoch count a selection model scores best on it (never the test data)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..data import AlignmentData
from ..errors import ConfigError, DataError
from ..recipes import DEFAULT_RECIPE, Recipe, load_recipe
from .classifier import ClassifierHparams
from .latents import CHUNK
from .protocol import build_task, device_of, run_classifier, selection_metric, synchronize
from .seeds import numpy_rng


def validation_view(data: AlignmentData, seed: int = 0, holdout: float = 0.2) -> AlignmentData:
    """A self-contained data set for epoch selection built from the ``train`` and ``val`` splits only.

    Classes: those of ``train`` (seen) and ``val`` (unseen), relabelled ``0..C'-1`` in ascending
    original order (``meta["class_ids"]`` maps back). Splits: ``trainval`` = the ``train`` images
    minus a held-out ``holdout`` fraction per class (seeded, at least one image per class with two
    or more), ``test_seen`` = the held-out images, ``test_unseen`` = the ``val`` images. Only these
    rows are copied, so nothing of the test splits is read. Raises
    `DataError` when ``train``/``val`` are missing, overlap the test splits,
    or share classes.
    """
    for name in ("train", "val"):
        if name not in data.splits:
            raise DataError(
                f"{data.name}: policy 'val' needs the xlsa17 'train' and 'val' splits, but {name!r} is missing "
                f"(available: {sorted(data.splits)}); use policy='fixed' or 'manual'"
            )
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"holdout must lie in (0, 1), got {holdout}")
    train, val = np.asarray(data.splits["train"]), np.asarray(data.splits["val"])
    for test in ("test_seen", "test_unseen"):
        if test in data.splits and np.intersect1d(np.concatenate([train, val]), data.splits[test]).size:
            raise DataError(f"{data.name}: the train/val splits share images with {test!r}; validation would read test data")
    labels = np.asarray(data.labels)
    train_classes, val_classes = np.unique(labels[train]), np.unique(labels[val])
    if np.intersect1d(train_classes, val_classes).size:
        raise DataError(f"{data.name}: the 'train' and 'val' splits share classes; 'val' must hold unseen classes only")
    rng = numpy_rng(seed, "validation")
    keep, held = [], []
    for cls in train_classes:
        members = train[labels[train] == cls]
        k = int(np.floor(holdout * members.size))
        k = max(k, 1) if members.size >= 2 else 0
        chosen = np.zeros(members.size, dtype=bool)
        chosen[rng.permutation(members.size)[:k]] = True
        keep.append(members[~chosen])
        held.append(members[chosen])
    keep, held = np.concatenate(keep), np.concatenate(held)
    rows = np.concatenate([keep, held, val])
    class_ids = np.union1d(train_classes, val_classes)
    positions = np.arange(rows.size)
    return AlignmentData(
        labels=np.searchsorted(class_ids, labels[rows]).astype(np.int64),
        class_names=[data.class_names[c] for c in class_ids],
        sample_features={k: np.ascontiguousarray(v[rows]) for k, v in data.sample_features.items()},
        class_features={k: np.ascontiguousarray(v[class_ids]) for k, v in data.class_features.items()},
        splits={"trainval": positions[: keep.size], "test_seen": positions[keep.size: keep.size + held.size],
                "test_unseen": positions[keep.size + held.size:]},
        sample_masks={k: np.asarray(v)[rows] for k, v in data.sample_masks.items()},
        sample_texts={k: [v[i] for i in rows] for k, v in data.sample_texts.items()},
        class_texts={k: [v[c] for c in class_ids] for k, v in data.class_texts.items()},
        name=f"{data.name}/val",
        meta={"validation_of": data.name, "holdout": holdout, "seed": int(seed), "class_ids": class_ids.tolist(),
              **{k: data.meta[k] for k in ("plugin",) if k in data.meta}},  # a plugin's arrays: its own modalities
    )


@dataclass
class EpochSelection:
    """The chosen epoch count, its score (percent) and every epoch's scores."""

    epochs: int
    metric: str
    score: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def best_epoch(history: list[dict[str, float]], metric: str) -> int:
    """1-based epoch with the highest ``metric`` (the earliest on ties)."""
    if not history:
        raise ConfigError("epoch selection needs at least one epoch")
    return int(np.argmax([h[metric] for h in history])) + 1


def select_epochs(
    selection_aligner: Any, selection_data: AlignmentData, setting: str = "gzsl", shots: int = 0, *, max_epochs: int = 100,
    seed: int = 0, image: str = "img", side: str = "att", reference: bool = False, recipe: Recipe | str = DEFAULT_RECIPE,
    adam: str = "auto", chunk: int = CHUNK,
) -> EpochSelection:
    """Policy ``val``: the epoch count in ``1..max_epochs`` with the best validation H (GZSL) or
    top-1 (ZSL).

    ``selection_data`` is `validation_view` of the data and ``selection_aligner`` an aligner trained on
    ``selection_data``'s ``trainval`` split only (``aligner.fit(selection_data)``). The protocol (few-shot split
    of the ``val`` images, latent sampling, classifier) is the test protocol with the same seed.
    """
    if max_epochs < 1:
        raise ConfigError(f"max_epochs must be >= 1, got {max_epochs}")
    start = time.perf_counter()
    rec = load_recipe(recipe)  # a Recipe is returned as it is
    task = build_task(selection_aligner, selection_data, setting, shots, seed, recipe=rec, image=image, side=side, chunk=chunk)
    hparams = replace(ClassifierHparams.from_recipe(rec), adam=adam)
    run = run_classifier(task, max_epochs, seed, hparams=hparams, reference=reference, track=True)
    metric = selection_metric(setting)
    epochs = best_epoch(run.history, metric)
    synchronize(device_of(selection_aligner))
    return EpochSelection(epochs, metric, run.history[epochs - 1][metric], run.history, time.perf_counter() - start)
