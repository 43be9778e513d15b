"""Linear cross-modal baselines: ridge regression and regularised CCA (numpy only).

Both work in the span of the centred training rows (thin SVD), which is exact for these models and
keeps them cheap when the dimension (e.g. 1024) exceeds the number of training classes (150).
Hyperparameters are chosen by `select_by_cv`: K-fold over *training classes*, scoring
retrieval among the held-out classes, so no test class is ever looked at.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from .metrics import retrieval_metrics, similarity


def _span(x: np.ndarray, mean: np.ndarray, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis ``V`` (d, r) of the centred rows and their coordinates ``Z = Xc V`` (n, r),
    columns by decreasing variance.

    Uses the eigendecomposition of the smaller of the Gram (``n x n``) and scatter (``d x d``)
    matrices, which is much faster than an SVD on a busy machine."""
    xc = x - mean
    n, d = xc.shape
    evals, evecs = np.linalg.eigh(xc @ xc.T if n <= d else xc.T @ xc)
    keep = evals > tol * max(evals.max(initial=0.0), 1e-300)
    evals, evecs = evals[keep][::-1], evecs[:, keep][:, ::-1]
    if n <= d:
        s = np.sqrt(evals)
        return (xc.T @ evecs) / s, evecs * s
    return evecs, xc @ evecs


class RidgeMap:
    """Least-squares map ``X -> Y`` with an L2 penalty: ``W = argmin |Xc W - Yc|^2 + alpha |W|^2``.

    Inputs and outputs are centred on the training means; ``predict`` adds the output mean back.

    Args:
        alpha: penalty (default 1.0); 0 gives the minimum-norm least-squares solution.
    """

    def __init__(self, alpha: float = 1.0):
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "RidgeMap":
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.x_mean, self.y_mean = x.mean(0), y.mean(0)
        basis, z = _span(x, self.x_mean)
        # In the basis, Z = U S: W_basis = S / (S^2 + alpha) U^T Yc.
        s = np.linalg.norm(z, axis=0)
        u = z / np.where(s > 0, s, 1.0)
        coef = (s / (s * s + self.alpha))[:, None] * (u.T @ (y - self.y_mean))
        self.weight = basis @ coef  # (dx, dy)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.x_mean) @ self.weight + self.y_mean


class CCA:
    """Regularised canonical correlation analysis.

    Covariances are shrunk towards a scaled identity, ``C = (1 - reg) S + reg * tr(S)/d * I``,
    then whitened; the SVD of the whitened cross-covariance gives the canonical directions.

    Args:
        n_components: canonical pairs kept (default: all available, at most ``n - 1``).
        reg: shrinkage in (0, 1] (default 0.1); small values overfit when ``d > n``.

    Attributes (after fit):
        correlations: ``(k,)`` canonical correlations on the training rows, descending.
    """

    def __init__(self, n_components: int | None = None, reg: float = 0.1):
        if not 0.0 < reg <= 1.0:
            raise ValueError(f"reg must lie in (0, 1], got {reg}")
        self.n_components = n_components
        self.reg = float(reg)

    def _whitener(self, z: np.ndarray, dim: int, n: int) -> np.ndarray:
        var = (z * z).sum(0) / (n - 1)  # Z's columns are orthogonal: S is diagonal in the basis
        shrunk = (1 - self.reg) * var + self.reg * var.sum() / dim
        return 1.0 / np.sqrt(shrunk)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "CCA":
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        n = x.shape[0]
        if n < 2 or y.shape[0] != n:
            raise ValueError(f"need >= 2 paired rows, got x {x.shape} and y {y.shape}")
        self.x_mean, self.y_mean = x.mean(0), y.mean(0)
        bx, zx = _span(x, self.x_mean)
        by, zy = _span(y, self.y_mean)
        wx, wy = self._whitener(zx, x.shape[1], n), self._whitener(zy, y.shape[1], n)
        cross = (zx * wx).T @ (zy * wy) / (n - 1)
        u, s, vt = np.linalg.svd(cross, full_matrices=False)
        k = min(self.n_components or s.size, s.size)
        self.correlations = s[:k]
        self.x_weights = bx @ (wx[:, None] * u[:, :k])
        self.y_weights = by @ (wy[:, None] * vt[:k].T)
        return self

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.x_mean) @ self.x_weights

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, np.float64) - self.y_mean) @ self.y_weights


# -- class-level retrieval with a fitted baseline ---------------------------------------------------
# A scorer fits once per parameter grid (the expensive factorisations are shared) and returns one
# (queries x gallery) cosine score matrix per grid entry.
def ridge_scores(x_tr, y_tr, x_q, y_g, grid: Sequence[dict]) -> list[np.ndarray]:
    """Ridge predictions of the queries against the gallery, both centred on the training output
    mean (removes the direction shared by all classes); grid entries: ``{"alpha": a}``."""
    x_tr, y_tr = np.asarray(x_tr, np.float64), np.asarray(y_tr, np.float64)
    x_mean, y_mean = x_tr.mean(0), y_tr.mean(0)
    basis, z = _span(x_tr, x_mean)
    s = np.linalg.norm(z, axis=0)
    proj = (z / s).T @ (y_tr - y_mean)  # U^T Yc
    xq = (np.asarray(x_q, np.float64) - x_mean) @ basis
    gallery = np.asarray(y_g, np.float64) - y_mean
    return [similarity(xq @ ((s / (s * s + p["alpha"]))[:, None] * proj), gallery) for p in grid]


def cca_scores(x_tr, y_tr, x_q, y_g, grid: Sequence[dict]) -> list[np.ndarray]:
    """Cosine in the canonical space, each component weighted by its correlation; grid entries:
    ``{"reg": r, "n_components": k or None}``."""
    out = []
    by_reg: dict[float, CCA] = {}
    for p in grid:
        if p["reg"] not in by_reg:
            by_reg[p["reg"]] = CCA(None, p["reg"]).fit(x_tr, y_tr)
        model = by_reg[p["reg"]]
        k = min(p.get("n_components") or model.correlations.size, model.correlations.size)
        rho = model.correlations[:k]
        out.append(similarity(model.transform_x(x_q)[:, :k] * rho, model.transform_y(y_g)[:, :k] * rho))
    return out


Scorer = Callable[..., list]


def select_by_cv(
    scorer: Scorer,
    x: np.ndarray,
    y: np.ndarray,
    grid: Sequence[dict],
    folds: int = 5,
    seed: int = 0,
    metric: str = "mrr",
) -> tuple[dict, list[float]]:
    """Pick the parameters in ``grid`` with the best mean held-out ``metric``.

    ``x``/``y`` hold one row per *training* class. The classes are split into ``folds`` groups;
    each group in turn is the gallery and query set for a model fitted on the others.

    Returns:
        (best parameters, mean score of every grid entry in order).
    """
    n = x.shape[0]
    parts = np.array_split(np.random.default_rng(seed).permutation(n), min(folds, n))
    scores = np.zeros(len(grid))
    for held in parts:
        train = np.setdiff1d(np.arange(n), held)
        for i, sim in enumerate(scorer(x[train], y[train], x[held], y[held], grid)):
            scores[i] += retrieval_metrics(sim, held, held)[metric] / len(parts)
    return dict(grid[int(np.argmax(scores))]), scores.tolist()


RIDGE_GRID: list[dict] = [{"alpha": a} for a in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)]
CCA_GRID: list[dict] = [{"reg": r, "n_components": k} for r in (0.05, 0.2, 0.5, 0.9) for k in (16, 48, None)]
SCORERS: dict[str, tuple[Scorer, list[dict]]] = {"ridge": (ridge_scores, RIDGE_GRID), "cca": (cca_scores, CCA_GRID)}


def baseline_retrieval(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    galleries: Sequence[tuple[np.ndarray, np.ndarray]],
    seed: int = 0,
    grid: Iterable[dict] | None = None,
) -> tuple[list[np.ndarray], dict]:
    """Fit baseline ``name`` (``"ridge"`` or ``"cca"``) on the classes ``train`` (parameters by
    `select_by_cv`) and score, for each ``(queries, gallery)`` pair of class-index arrays,
    the rows ``x[queries]`` against ``y[gallery]``.

    Returns:
        one ``(len(queries), len(gallery))`` score matrix per pair, and the chosen parameters.
    """
    if name not in SCORERS:
        raise ValueError(f"unknown baseline {name!r}; use one of {sorted(SCORERS)}")
    scorer, default = SCORERS[name]
    params, _ = select_by_cv(scorer, x[train], y[train], list(grid or default), seed=seed)
    return [scorer(x[train], y[train], x[q], y[g], [params])[0] for q, g in galleries], params
