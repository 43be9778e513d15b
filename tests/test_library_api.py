"""The library API a new user reads first: documented defaults, how a modality finds its data,
synthetic data that knows what it imitates, the shipped type marker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mmalign
from mmalign.datasets import synthetic_like
from mmalign.errors import DataError
from mmalign.retrieval.cub_text import run_cub_text
from conftest import SMALL, make_toy_data


def test_aligner_docstrings_state_the_defaults():
    init = mmalign.Aligner.__init__.__doc__
    assert "latent size 64" in init and "cada_vae" in init and "options.source" in init
    assert "torch" in mmalign.Aligner.encode.__doc__
    for method in ("embed", "translate", "retrieve"):
        assert method in mmalign.Aligner.__doc__


def test_package_ships_a_py_typed_marker():
    assert (Path(mmalign.__file__).parent / "py.typed").is_file()


class Audio(mmalign.FeatureModality):
    kind = "audio"
    granularity = "sample"


def test_modality_named_differently_from_its_array_suggests_options_source():
    data = make_toy_data()
    data.sample_features["audio"] = np.random.default_rng(0).random((data.num_samples, 6)).astype(np.float32)
    aligner = mmalign.Aligner([Audio("aud", hidden=(8, 8)), {"kind": "attributes", "hidden": (8, 8)}], SMALL)
    with pytest.raises(DataError, match=r"no feature array named 'aud'.*options.source='audio'"):
        aligner.fit(data, progress=False)
    fixed = mmalign.Aligner([Audio("aud", hidden=(8, 8), source="audio"), {"kind": "attributes", "hidden": (8, 8)}], SMALL)
    assert fixed.fit(data, progress=False)[-1].terms["loss"] > 0


def test_evaluate_on_synthetic_data_uses_the_table_of_the_data_set_it_imitates():
    data = synthetic_like("CUB", seed=0, feature_dim=32, num_samples=1200)
    aligner = mmalign.Aligner([{"kind": "image_features", "name": "img", "hidden": (16, 16)},
                               {"kind": "attributes", "name": "att", "hidden": (16, 16)}],
                              {"latent_size": 8, "training": {"epochs": 1}})
    aligner.fit(data, progress=False)
    result = mmalign.evaluate(aligner, data, setting="zsl")
    assert result["selected_on"] == "table" and result["classifier_epochs"] > 0 and result["dataset"] == data.name


def test_cub_text_table_counts_in_words(tmp_path):
    run_cub_text(seeds=[0], epochs=1, modalities=("att", "sent"), out=tmp_path, baselines=(), hidden=(8, 8),
                 class_repeats=1, recompute="never", progress=False, log=lambda line: None)
    head = (tmp_path / "table.md").read_text().splitlines()[0]
    assert "(1 seed, 1 epoch;" in head
