"""The shipped real-feature data set ``cub-latents``: registered through the data-set hook, real
CUB latents with attributes and sentences, seeded stratified splits that never mix test images
into training or validation."""

from __future__ import annotations

import numpy as np

import mmalign
from mmalign.datasets.load import load_dataset
from mmalign.protocols.policies import validation_view


def test_cub_latents_is_a_plugin_data_set_with_xlsa17_style_splits():
    assert mmalign.get_catalog().dataset("cub-latents").plugin == "mmalign_plugins.cub_latents"
    data = load_dataset("cub-latents")
    assert data.sample_features["features"].shape == (4731, 64) and data.num_classes == 200
    assert data.class_features["attributes"].shape == (200, 312) and data.class_features["sentences"].shape == (200, 1024)
    s = {k: np.asarray(v) for k, v in data.splits.items()}
    labels = data.labels
    seen, unseen = np.unique(labels[s["trainval"]]), np.unique(labels[s["test_unseen"]])
    assert seen.size == 150 and unseen.size == 50 and not np.intersect1d(seen, unseen).size
    assert np.array_equal(np.unique(labels[s["test_seen"]]), seen)  # every seen class on both sides
    assert not np.intersect1d(s["trainval"], s["test_seen"]).size
    assert s["trainval"].size + s["test_seen"].size == 1764 and s["test_unseen"].size == 2967
    for cls in seen:  # 2:1 per class (stratified)
        n_train, n_test = (labels[s["trainval"]] == cls).sum(), (labels[s["test_seen"]] == cls).sum()
        assert abs(n_train - 2 * n_test) <= 2
    assert np.array_equal(np.sort(np.concatenate([s["train"], s["val"]])), np.sort(s["trainval"]))
    assert np.unique(labels[s["val"]]).size == 50
    assert not np.intersect1d(np.unique(labels[s["train"]]), np.unique(labels[s["val"]])).size
    again = load_dataset("cub-latents")  # the split is part of the data set: the same every time
    assert all(np.array_equal(again.splits[k], data.splits[k]) for k in data.splits)
    view = validation_view(data)  # the validation policy works on it and reads no test image
    assert view.num_classes == 150
