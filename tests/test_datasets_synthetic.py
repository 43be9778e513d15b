"""Synthetic benchmark-shaped data: determinism, layout, learnability, xlsa17 round trip."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign.datasets import load_card, read_xlsa17, synthetic_like, write_xlsa17_layout
from mmalign.errors import ConfigError


@pytest.mark.parametrize("name", ["APY", "AWA1", "AWA2", "CUB", "FLO", "SUN"])
def test_synthetic_like_full_layout_matches_card(name):
    card = load_card(name)
    data = synthetic_like(name, seed=0, feature_dim=4)
    assert data.num_samples == card.num_images and data.num_classes == card.num_classes
    assert len(data.seen_classes) == card.num_seen_classes
    assert len(data.unseen_classes) == card.num_unseen_classes
    for split, size in card.splits.model_dump().items():
        if size is None:
            assert split not in data.splits
        else:
            assert data.splits[split].size == size, split
    if card.num_val_classes is not None and "val" in data.splits:
        assert len(data.classes_of("val")) == card.num_val_classes
    for key, spec in card.class_features.items():
        assert data.class_features[key].shape == (card.num_classes, spec.dim)
    assert data.sample_features["features"].shape == (card.num_images, 4)


def test_synthetic_like_deterministic():
    a = synthetic_like("CUB", seed=7, feature_dim=32, num_samples=800)
    b = synthetic_like(load_card("CUB"), seed=7, feature_dim=32, num_samples=800)
    c = synthetic_like("CUB", seed=8, feature_dim=32, num_samples=800)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.sample_features["features"], b.sample_features["features"])
    for k in a.class_features:
        np.testing.assert_array_equal(a.class_features[k], b.class_features[k])
    for k in a.splits:
        np.testing.assert_array_equal(a.splits[k], b.splits[k])
    assert not np.array_equal(a.sample_features["features"], c.sample_features["features"])


def test_synthetic_like_array_properties():
    data = synthetic_like("CUB", seed=0, feature_dim=64, num_samples=1000)
    feats, att = data.sample_features["features"], data.class_features["attributes"]
    assert data.num_samples == 1000
    assert feats.dtype == np.float32 and att.dtype == np.float32
    assert feats.min() >= 0 and 0.2 < (feats == 0).mean() < 0.8  # non-negative, ReLU-sparse
    assert att.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(att, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_less(0, np.bincount(data.labels, minlength=200))  # every class has images


def test_synthetic_like_too_few_samples():
    with pytest.raises(ConfigError, match="too small for a SUN-like layout"):
        synthetic_like("SUN", seed=0, feature_dim=4, num_samples=500)


def _zsl_accuracy(data, key="attributes", lam=1.0) -> float:
    """Ridge regression features -> class embedding on trainval; nearest unseen embedding."""
    x, emb = data.sample_features["features"].astype(np.float64), data.class_features[key]
    tr, te = data.splits["trainval"], data.splits["test_unseen"]
    x = (x - x[tr].mean(0)) / (x[tr].std(0) + 1e-6)
    w = np.linalg.solve(x[tr].T @ x[tr] + lam * len(tr) * np.eye(x.shape[1]), x[tr].T @ emb[data.labels[tr]])
    unseen = data.unseen_classes
    pred = unseen[np.argmax((x[te] @ w) @ emb[unseen].T, axis=1)]
    truth = data.labels[te]
    return float(np.mean([np.mean(pred[truth == c] == c) for c in unseen]))


@pytest.mark.parametrize("key", ["attributes", "sentences"])
def test_synthetic_like_unseen_learnable_not_trivial(key):
    data = synthetic_like("CUB", seed=3, feature_dim=128, num_samples=3000)
    acc = _zsl_accuracy(data, key)
    chance = 1 / len(data.unseen_classes)
    assert 5 * chance < acc < 0.95, acc


def test_write_xlsa17_layout_roundtrip(tmp_path):
    data = synthetic_like("FLO", seed=4, feature_dim=10, num_samples=500)
    folder = write_xlsa17_layout(data, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["att_splits.mat", "res101.mat"]
    got = read_xlsa17(folder, use_cache=False)
    np.testing.assert_array_equal(got.labels, data.labels)
    np.testing.assert_array_equal(got.sample_features["features"], data.sample_features["features"])
    np.testing.assert_array_equal(got.class_features["attributes"], data.class_features["attributes"])
    assert got.class_names[0] == "class_001"  # FLO-like: written without class names
    for k in data.splits:
        np.testing.assert_array_equal(got.splits[k], data.splits[k])
