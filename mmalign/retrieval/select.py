"""Choosing an aligner's capacity by cross-validation over the *seen* classes only, exactly as the
linear baselines choose theirs (`select_by_cv`): the seen
classes are split into ``folds`` groups with the same seeded permutation; each group in turn is
held out, an aligner is fitted on the other seen classes and scored by retrieval MRR among the
held-out classes, averaged over every ordered pair of its modalities. No unseen class is looked at.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Sequence

import numpy as np

from ..config import merge_tables
from .metrics import retrieval_metrics


def fold_parts(num_classes: int, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out groups of `select_by_cv` (positions into the
    training classes)."""
    return np.array_split(np.random.default_rng(seed).permutation(num_classes), min(folds, num_classes))


def class_data(arrays: dict[str, np.ndarray], names: Sequence[str], train: np.ndarray, held: np.ndarray,
               class_repeats: int, class_names: Sequence[str]):
    """An `AlignmentData` whose ``trainval`` repeats the ``train`` classes."""
    from ..data import AlignmentData

    labels = np.concatenate([np.repeat(train, class_repeats), train, held])
    n = train.size * class_repeats
    splits = {"trainval": np.arange(n), "test_seen": np.arange(n, n + train.size),
              "test_unseen": np.arange(n + train.size, labels.size)}
    return AlignmentData(labels, list(class_names), {}, {k: arrays[k] for k in names}, splits, name="cub-text-cv")


def cv_score(make_aligner: Callable[[dict[str, Any]], Any], candidate: dict[str, Any], arrays: dict[str, np.ndarray],
             names: Sequence[str], seen: np.ndarray, class_names: Sequence[str], folds: int = 5, seed: int = 0,
             class_repeats: int = 15) -> dict[str, Any]:
    """Mean held-out MRR (fraction) over folds and ordered pairs of one candidate config.

    ``make_aligner(candidate)`` returns a fresh, unfitted `Aligner` for ``names``."""
    started = time.perf_counter()
    per_fold = []
    for held_pos in fold_parts(seen.size, folds, seed):
        held = seen[held_pos]
        train = np.setdiff1d(seen, held)
        aligner = make_aligner(candidate)
        aligner.fit(class_data(arrays, names, train, held, class_repeats, class_names), progress=False)
        scores = []
        for a, b in itertools.permutations(names, 2):
            idx, sims = aligner.retrieve(a, arrays[a][held], b, arrays[b][held], k=None)
            sim = np.empty_like(sims)
            np.put_along_axis(sim, idx, sims, axis=1)
            scores.append(retrieval_metrics(sim, held, held)["mrr"])
        per_fold.append(float(np.mean(scores)))
    return {"candidate": candidate, "mrr": float(np.mean(per_fold)), "per_fold": per_fold,
            "seconds": round(time.perf_counter() - started, 1)}


def expand_grid(grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid ``{"dotted.key": [values]}`` as nested override dicts."""
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        candidate: dict[str, Any] = {}
        for key, value in zip(keys, values):
            *path, last = key.split(".")
            nested: dict[str, Any] = {last: value}
            for part in reversed(path):
                nested = {part: nested}
            candidate = merge_tables(candidate, nested)
        out.append(candidate)
    return out
