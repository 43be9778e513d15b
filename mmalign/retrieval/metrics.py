"""Cross-modal retrieval metrics: top-k accuracy and mean reciprocal rank (MRR).

A query (one row of a similarity matrix) is answered correctly at rank r when r - 1 gallery items
of a *wrong* class score at least as high as the best-scoring item of its own class. Ties count
against the query (a constant similarity matrix scores rank G, not 1), so a degenerate model can
never look better than chance.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit Euclidean norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def similarity(queries: np.ndarray, gallery: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """``(Q, G)`` similarity: ``"cosine"`` (default), ``"dot"`` or ``"euclidean"`` (negative distance)."""
    q, g = np.asarray(queries, dtype=np.float64), np.asarray(gallery, dtype=np.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"queries {q.shape} and gallery {g.shape} must be 2-D with the same width")
    if metric == "cosine":
        return l2_normalize(q) @ l2_normalize(g).T
    if metric == "dot":
        return q @ g.T
    if metric == "euclidean":
        sq = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2 * q @ g.T
        return -np.sqrt(np.maximum(sq, 0.0))
    raise ValueError(f"unknown similarity metric {metric!r}; use 'cosine', 'dot' or 'euclidean'")


def retrieval_ranks(sim: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """1-based rank of the first correct gallery item for each query (ties count as misses).

    Args:
        sim: ``(Q, G)`` scores, higher = more similar.
        query_labels: ``(Q,)`` class of each query.
        gallery_labels: ``(G,)`` class of each gallery item; every query's class must occur.
    """
    sim = np.asarray(sim, dtype=np.float64)
    ql, gl = np.asarray(query_labels), np.asarray(gallery_labels)
    if sim.shape != (ql.shape[0], gl.shape[0]):
        raise ValueError(f"similarity {sim.shape} does not match {ql.shape[0]} queries x {gl.shape[0]} gallery items")
    correct = ql[:, None] == gl[None, :]
    missing = ~correct.any(axis=1)
    if missing.any():
        raise ValueError(f"query class {ql[missing][0]!r} has no item in the gallery")
    best = np.where(correct, sim, -np.inf).max(axis=1)
    wrong_above = ((sim >= best[:, None]) & ~correct).sum(axis=1)
    return wrong_above + 1


def retrieval_metrics(
    sim: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray, ks: Iterable[int] = (1, 5)
) -> dict[str, float]:
    """``{"top1": ..., "top5": ..., "mrr": ...}`` (fractions in [0, 1]) over all queries."""
    ranks = retrieval_ranks(sim, query_labels, gallery_labels)
    out = {f"top{k}": float((ranks <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / ranks).mean())
    return out


def chance_metrics(gallery_size: int, ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """Expected metrics of a random ranking with one correct item among ``gallery_size``."""
    n = int(gallery_size)
    out = {f"top{k}": min(k, n) / n for k in ks}
    out["mrr"] = float(np.mean(1.0 / np.arange(1, n + 1)))
    return out
