"""Library use without packaging: a user-defined modality trained with two built-ins (M = 3)."""

import numpy as np
import pytest
import torch

import mmalign
from conftest import SMALL, make_toy_data


class AudioEmbedding(mmalign.FeatureModality):
    """Per-sample 6-d audio embeddings, MinMax-scaled on the training split."""

    kind = "audio"
    granularity = "sample"

    class Options(mmalign.FeatureModality.Options):
        normaliser: str = "minmax"
        hidden: tuple[int, int] = (32, 24)


def test_custom_modality_trains_with_two_builtins_m3(tmp_path):
    data = make_toy_data()
    rng = np.random.default_rng(1)
    data.sample_features["audio"] = (data.labels[:, None] * 0.1 + rng.random((data.num_samples, 6))).astype(np.float32)
    aligner = mmalign.Aligner(
        [{"kind": "image_features", "name": "img", "hidden": (32, 24)},
         {"kind": "attributes", "name": "att", "hidden": (16, 12)},
         AudioEmbedding()],
        {**SMALL, "latent_size": 8},
    )
    history = aligner.fit(data, seed=5, progress=False)
    terms = history[-1].terms
    assert len([t for t in terms if t.startswith("cross/")]) == 6
    assert len([t for t in terms if t.startswith("align/")]) == 3
    assert all(np.isfinite(v) for v in terms.values())
    path = aligner.save(tmp_path / "m3")
    loaded = mmalign.Aligner.load(path, modalities=[AudioEmbedding()])
    x = data.sample_features["audio"][:4]
    assert torch.equal(aligner.encode("audio", x)[0], loaded.encode("audio", x)[0])


def test_same_seed_gives_identical_training_on_cpu():
    data = make_toy_data()
    runs = []
    for _ in range(2):
        a = mmalign.Aligner([{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)}],
                            {**SMALL, "latent_size": 8, "device": "cpu"})
        h = a.fit(data, seed=11, progress=False)
        runs.append((h[-1].terms, a.model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_recipe_hidden_sizes_apply_unless_set():
    a = mmalign.Aligner(["image_features", "attributes", "sentences"])
    assert a.modalities["image_features"].options.hidden == (1560, 1660)
    assert a.modalities["attributes"].options.hidden == (1450, 665)
    b = mmalign.Aligner([{"kind": "image_features", "hidden": (8, 8)}, "attributes"])
    assert b.modalities["image_features"].options.hidden == (8, 8)


def test_sample_masks_drop_missing_rows_from_training():
    data = make_toy_data()
    rng = np.random.default_rng(2)
    data.sample_features["audio"] = rng.random((data.num_samples, 6)).astype(np.float32)
    data.sample_masks["audio"] = rng.random(data.num_samples) > 0.5
    a = mmalign.Aligner([{"kind": "image_features", "hidden": (32, 24)}, "attributes", AudioEmbedding()], {**SMALL, "latent_size": 8})
    tensors = a.training_tensors(data)
    assert tensors.masks["audio"].dtype == torch.bool
    assert a.fit(data, progress=False)[-1].terms["recon/audio"] > 0
