"""Shared fixtures: small seeded data sets in the AlignmentData layout; one torch thread per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mmalign

#: Real published files shipped with the tests (origin and licence in tests/data/SOURCES.md).
REAL_DATA = Path(__file__).resolve().parent / "data"


def make_toy_data(seed: int = 0, classes: int = 12, per_class: int = 20, feat_dim: int = 40, att_dim: int = 10,
                  unseen: int = 4) -> mmalign.AlignmentData:
    """Per-sample features that are a noisy linear map of per-class attributes."""
    rng = np.random.default_rng(seed)
    att = rng.random((classes, att_dim)).astype(np.float32)
    labels = np.repeat(np.arange(classes), per_class)
    mix = rng.normal(size=(att_dim, feat_dim))
    feats = (np.maximum(att[labels] @ mix, 0) + 0.05 * rng.random((labels.size, feat_dim))).astype(np.float32)
    seen = labels < classes - unseen
    seen_idx = np.flatnonzero(seen)
    test_seen = seen_idx[::5]
    trainval = np.setdiff1d(seen_idx, test_seen)
    return mmalign.AlignmentData(
        labels=labels, class_names=[f"class{i}" for i in range(classes)],
        sample_features={"features": feats}, class_features={"attributes": att},
        splits={"trainval": trainval, "test_seen": test_seen, "test_unseen": np.flatnonzero(~seen)},
        name="toy",
    )


def add_masked_feature(data: mmalign.AlignmentData, name: str, seed: int, absent: float, dim: int = 6):
    """A random per-sample feature ``name`` that about a fraction ``absent`` of the samples lack."""
    rng = np.random.default_rng(seed)
    data.sample_features[name] = rng.random((data.num_samples, dim)).astype(np.float32)
    data.sample_masks[name] = rng.random(data.num_samples) > absent
    return data


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test runs torch on one intra-op thread: the tensors are tiny, and on a shared, busy CPU
    OpenMP's spinning threads make them many times slower (benchmarks/SPEED.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_data() -> mmalign.AlignmentData:
    return make_toy_data()


SMALL = {"training": {"epochs": 2, "batch_size": 16}}
SMALL_HIDDEN = {"hidden": (32, 24)}
