"""Ridge and regularised CCA baselines on synthetic data where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign.retrieval import CCA, RidgeMap, baseline_retrieval, retrieval_metrics, select_by_cv
from mmalign.retrieval.baselines import ridge_scores


def test_ridge_recovers_a_linear_map_without_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    w, b = rng.normal(size=(6, 3)), rng.normal(size=3)
    model = RidgeMap(alpha=1e-9).fit(x, x @ w + b)
    np.testing.assert_allclose(model.weight, w, atol=1e-6)
    np.testing.assert_allclose(model.predict(x[:5]), x[:5] @ w + b, atol=1e-6)


def test_ridge_matches_the_closed_form_and_shrinks_to_the_mean():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 80)), rng.normal(size=(30, 4))  # more dimensions than rows
    alpha = 2.5
    xc, yc = x - x.mean(0), y - y.mean(0)
    closed = np.linalg.solve(xc.T @ xc + alpha * np.eye(80), xc.T @ yc)
    np.testing.assert_allclose(RidgeMap(alpha).fit(x, y).weight, closed, atol=1e-8)
    huge = RidgeMap(1e12).fit(x, y)
    np.testing.assert_allclose(huge.predict(x), np.broadcast_to(y.mean(0), y.shape), atol=1e-6)
    with pytest.raises(ValueError):
        RidgeMap(-1.0)


def test_cca_finds_the_shared_signal_and_its_correlation():
    rng = np.random.default_rng(2)
    n, noise = 20000, 0.5
    z = rng.normal(size=(n, 1))
    # each view: the shared z plus unit-variance-scaled noise in one column, pure noise elsewhere,
    # then mixed by a random invertible matrix: the top canonical correlation is 1 / (1 + noise^2)
    x = np.hstack([z + noise * rng.normal(size=(n, 1)), rng.normal(size=(n, 3))]) @ rng.normal(size=(4, 4))
    y = np.hstack([z + noise * rng.normal(size=(n, 1)), rng.normal(size=(n, 2))]) @ rng.normal(size=(3, 3))
    model = CCA(reg=1e-6).fit(x, y)
    assert model.correlations[0] == pytest.approx(1 / (1 + noise**2), abs=0.01)
    assert model.correlations[1] < 0.05
    u, v = model.transform_x(x)[:, 0], model.transform_y(y)[:, 0]
    assert abs(np.corrcoef(u, v)[0, 1]) == pytest.approx(model.correlations[0], abs=1e-3)


def test_cca_exact_when_one_view_is_a_linear_map_of_the_other():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100, 5))
    model = CCA(reg=1e-9).fit(x, x @ rng.normal(size=(5, 5)))
    np.testing.assert_allclose(model.correlations, 1.0, atol=1e-6)
    assert CCA(n_components=2, reg=0.1).fit(x, x).correlations.shape == (2,)
    with pytest.raises(ValueError):
        CCA(reg=0.0)


def _classes(rng, n=60, dx=20, dy=30, noise=0.05):
    """Per-class vectors of two views related by a linear map, plus noise."""
    x = rng.normal(size=(n, dx))
    return x, x @ rng.normal(size=(dx, dy)) + noise * rng.normal(size=(n, dy))


@pytest.mark.parametrize("name", ["ridge", "cca"])
def test_baselines_retrieve_unseen_classes_of_a_linear_relation(name):
    x, y = _classes(np.random.default_rng(4))
    train, test = np.arange(40), np.arange(40, 60)
    (sim,), params = baseline_retrieval(name, x, y, train, [(test, test)])
    assert retrieval_metrics(sim, test, test)["top1"] >= 0.95, params


def test_select_by_cv_prefers_the_sensible_penalty():
    x, y = _classes(np.random.default_rng(5), n=50, noise=0.0)
    best, scores = select_by_cv(ridge_scores, x, y, [{"alpha": 1e-6}, {"alpha": 1e6}])
    assert best == {"alpha": 1e-6} and scores[0] > scores[1]
