"""Aligner.embed / translate / retrieve on the real CUB class data shipped with mmalign
(attributes and Reed et al. sentence embeddings of the 200 CUB classes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmalign
from mmalign.errors import ConfigError
from mmalign.retrieval.cub_data import load_cub_text
from mmalign.retrieval.cub_text import alignment_data, build_modalities, scaled_warmup, wiki_vectors
from conftest import SMALL, make_toy_data

EPOCHS = 6


@pytest.fixture(scope="module")
def cub():
    bundle = load_cub_text()
    vectors, _ = wiki_vectors(bundle, "never")
    data = alignment_data(bundle, vectors, "class", "visual", class_repeats=8)
    aligner = mmalign.Aligner(
        build_modalities(("att", "sent"), "class", (128, 128)),
        {"seed": 0, "latent_size": 16,
         "training": {"epochs": EPOCHS, "lr": 2e-3, "warmup": scaled_warmup(EPOCHS)}},
    )
    aligner.fit(data, progress=False)
    return bundle, aligner


def test_embed_returns_posterior_means_in_the_type_given(cub):
    bundle, aligner = cub
    rows = bundle.attributes[:7]
    z = aligner.embed("att", rows)
    assert isinstance(z, np.ndarray) and z.dtype == np.float32 and z.shape == (7, 16)
    np.testing.assert_array_equal(z, aligner.encode("att", rows)[0].numpy())
    zt = aligner.embed("att", torch.from_numpy(rows))
    assert isinstance(zt, torch.Tensor) and torch.equal(zt, torch.from_numpy(z))


def test_retrieve_finds_unseen_classes_across_modalities(cub):
    bundle, aligner = cub
    unseen = bundle.unseen
    idx, scores = aligner.retrieve("att", bundle.attributes[unseen], "sent", bundle.sentence_embeddings[unseen], k=5)
    assert idx.shape == scores.shape == (50, 5) and idx.dtype == np.int64
    assert (np.diff(scores, axis=1) <= 0).all(), "results are ranked best first"
    top1 = (idx[:, 0] == np.arange(50)).mean()
    assert top1 > 0.2, f"top-1 {top1:.2f} among 50 unseen classes (chance 0.02)"
    # the scores are the cosine similarities of the posterior means
    q, g = aligner.embed("att", bundle.attributes[unseen]), aligner.embed("sent", bundle.sentence_embeddings[unseen])
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    np.testing.assert_allclose(scores, np.take_along_axis(cos, idx, axis=1), atol=1e-6)


def test_retrieve_ranks_the_whole_gallery_and_keeps_torch_in_torch(cub):
    bundle, aligner = cub
    q, g = torch.from_numpy(bundle.attributes[:3]), torch.from_numpy(bundle.sentence_embeddings)
    idx, scores = aligner.retrieve("att", q, "sent", g, k=None)
    assert isinstance(idx, torch.Tensor) and idx.shape == (3, 200)
    assert all(sorted(row.tolist()) == list(range(200)) for row in idx)
    with pytest.raises(ConfigError, match="k must lie in 1..200"):
        aligner.retrieve("att", q, "sent", g, k=201)


def test_translate_renders_one_modality_as_another(cub):
    bundle, aligner = cub
    seen = bundle.seen
    out = aligner.translate("att", "sent", bundle.attributes[seen])
    truth = bundle.sentence_embeddings[seen]
    assert isinstance(out, np.ndarray) and out.shape == truth.shape
    error = np.abs(out - truth).mean()
    mean_guess = np.abs(truth.mean(axis=0) - truth).mean()
    assert error < 0.9 * mean_guess, f"translation error {error:.3f} vs predicting the mean {mean_guess:.3f}"
    again = aligner.translate("att", "sent", torch.from_numpy(bundle.attributes[seen]))
    assert isinstance(again, torch.Tensor) and torch.allclose(again, torch.from_numpy(out))


def test_translate_undoes_the_target_normaliser():
    data = make_toy_data()
    aligner = mmalign.Aligner([{"kind": "image_features", "hidden": (8, 8), "normaliser": "minmax"},
                               {"kind": "attributes", "hidden": (8, 8)}], SMALL)
    aligner.fit(data, progress=False)
    att = data.class_features["attributes"][:4]
    out = aligner.translate("attributes", "image_features", att)
    mu = aligner.encode("attributes", att)[0]
    normalised = aligner.model.decoders["image_features"](mu)
    np.testing.assert_allclose(aligner.normalisers["image_features"](torch.from_numpy(out)).numpy(),
                               normalised.detach().numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="unknown modality 'audio'"):
        aligner.translate("attributes", "audio", att)
