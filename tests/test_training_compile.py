"""train_fast / train_seeds with compile=True (torch.compile; on the CPU inductor needs a C++
compiler) give the eager numbers.

Compiling takes minutes on a small shared CPU (~3.5 min cold, ~50 s with inductor's cache warm, on
2 busy cores), so this file runs only with ``MMALIGN_TEST_COMPILE=1``.
"""

from __future__ import annotations

import copy
import os
import shutil

import pytest
import torch
from conftest import make_toy_data

import mmalign
from mmalign.training import train, train_seeds

pytestmark = [
    pytest.mark.skipif(os.environ.get("MMALIGN_TEST_COMPILE") != "1", reason="slow: set MMALIGN_TEST_COMPILE=1"),
    pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                       reason="torch.compile on the CPU needs a C++ compiler"),
]
ON = {"start": -1, "end": 3, "factor": 1.0}  # every weight non-zero from epoch 0: one graph per path


def setup(seed=0):
    a = mmalign.Aligner([{"kind": "image_features", "hidden": (16, 12)}, {"kind": "attributes", "hidden": (8, 8)}],
                        {"seed": seed, "device": "cpu", "latent_size": 4,
                         "training": {"epochs": 2, "batch_size": 16,
                                      "warmup": {"kl": ON, "cross": ON, "align": ON}}})
    tensors = a.training_tensors(make_toy_data())
    return a, tensors


def test_compile_matches_reference_and_seeds():
    a, tensors = setup()
    model = a.build(a.dims)
    twin, pair = copy.deepcopy(model), [copy.deepcopy(model), copy.deepcopy(model)]
    config = a.config.training  # the weights change per epoch without recompiling (a tensor input)
    compiled = config.model_copy(update={"compile": True})
    ref = train(model, tensors, config.model_copy(update={"engine": "reference"}), torch.Generator().manual_seed(0),
                progress=False)
    fast = train(twin, tensors, compiled, torch.Generator().manual_seed(0), progress=False)
    runs = train_seeds(pair, tensors, compiled, [torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)],
                       progress=False)
    for history in (fast, *runs):
        for e_ref, e in zip(ref, history):
            assert e.terms["loss"] == pytest.approx(e_ref.terms["loss"], rel=1e-4)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)
