"""Normalisers: their values on hand-worked inputs, and that they see only the training rows and
the training classes (test rows and test-only classes poisoned: nothing the model learns moves)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmalign
from mmalign.errors import CheckpointError, ConfigError
from mmalign.normalise import L2, MinMax, Normaliser, make_normaliser
from conftest import make_toy_data

TINY = {"latent_size": 4, "device": "cpu", "training": {"epochs": 2, "batch_size": 16}}
# attributes are taken as they are in CADA-VAE; MinMax here so that the per-class fit is exercised too
MODALITIES = [{"kind": "image_features", "hidden": (16, 16)},
              {"kind": "attributes", "hidden": (8, 8), "normaliser": "minmax"}]


def test_minmax_scales_each_dimension_to_unit_range_and_keeps_constant_ones():
    train = torch.tensor([[1.0, 10.0, 5.0], [3.0, 10.0, -5.0], [2.0, 10.0, 0.0]])
    z = MinMax().fit(train)
    assert z.min.tolist() == [1.0, 10.0, -5.0]
    assert z.scale.tolist() == pytest.approx([0.5, 1.0, 0.1])  # constant column: scale 1 (sklearn)
    assert z(train).flatten().tolist() == pytest.approx([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 0.0, 0.5])
    # rows outside the training range are mapped by the same affine map, not clipped
    assert z(torch.tensor([[5.0, 12.0, -15.0]])).flatten().tolist() == pytest.approx([2.0, 2.0, -1.0])


def test_minmax_state_round_trips_and_is_checked():
    z = MinMax().fit(torch.tensor([[0.0, 2.0], [4.0, 3.0]]))
    again = MinMax()
    again.load_state(z.state())
    x = torch.tensor([[1.0, 2.5]])
    assert torch.equal(again(x), z(x)) and again(x).tolist() == [[0.25, 0.5]]
    with pytest.raises(CheckpointError, match="'min' and 'scale'"):
        MinMax().load_state({"min": torch.zeros(2)})
    with pytest.raises(ConfigError, match="before it was fitted"):
        MinMax()(x)


def test_l2_and_none_normalisers():
    assert L2()(torch.tensor([[3.0, 4.0], [0.0, -2.0]])).flatten().tolist() == pytest.approx([0.6, 0.8, 0.0, -1.0])
    x = torch.tensor([[7.0, -1.0]])
    assert torch.equal(Normaliser().fit(x)(x), x)
    assert isinstance(make_normaliser("minmax"), MinMax) and make_normaliser("l2").state() == {}
    with pytest.raises(ConfigError, match="unknown normaliser 'zscore'"):
        make_normaliser("zscore")


def _poisoned(data: mmalign.AlignmentData) -> mmalign.AlignmentData:
    """The same data with every test image and every test-only class embedding replaced by huge values."""
    feats = data.sample_features["features"].copy()
    att = data.class_features["attributes"].copy()
    test = np.concatenate([data.splits["test_seen"], data.splits["test_unseen"]])
    feats[test] = np.random.default_rng(1).uniform(-1e6, 1e6, size=(test.size, feats.shape[1]))
    att[data.unseen_classes] = 1e6
    return mmalign.AlignmentData(labels=data.labels, class_names=data.class_names, sample_features={"features": feats},
                                 class_features={"attributes": att}, splits=data.splits, name=data.name)


def test_normalisers_are_fitted_on_training_rows_and_classes_only():
    data = make_toy_data()
    train = data.splits["trainval"]
    clean = mmalign.Aligner(MODALITIES, TINY)
    clean.training_tensors(data)
    # the fitted values are those of the training rows / training classes, worked out with numpy
    feats = data.sample_features["features"][train]
    span = feats.max(0) - feats.min(0)
    np.testing.assert_array_equal(clean.normalisers["image_features"].min.numpy(), feats.min(0))
    np.testing.assert_allclose(clean.normalisers["image_features"].scale.numpy(), 1 / span, rtol=1e-6)
    att = data.class_features["attributes"][data.seen_classes]
    np.testing.assert_array_equal(clean.normalisers["attributes"].min.numpy(), att.min(0))
    # poisoning the test rows and the unseen classes' embeddings changes nothing that training sees
    dirty = mmalign.Aligner(MODALITIES, TINY)
    dirty.training_tensors(_poisoned(data))
    for name in ("image_features", "attributes"):
        for key, value in clean.normalisers[name].state().items():
            assert torch.equal(value, dirty.normalisers[name].state()[key]), (name, key)


def test_training_ignores_test_rows_and_test_classes():
    data = make_toy_data()
    runs = []
    for d in (data, _poisoned(data)):
        aligner = mmalign.Aligner(MODALITIES, TINY)
        history = aligner.fit(d, seed=3, progress=False)
        runs.append(([h.terms for h in history], aligner.model.state_dict()))
    (terms_a, state_a), (terms_b, state_b) = runs
    assert terms_a == terms_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
