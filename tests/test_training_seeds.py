"""mmalign.training.train_seeds: S runs trained as one stacked model; run s must match a single
reference run of seed s (its own init, its own generator) to floating-point rounding."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import add_masked_feature, make_toy_data
from torch import nn

import mmalign
from mmalign.model import AlignedVAE
from mmalign.modality import FeatureModality
from mmalign.training import train, train_seeds
from mmalign.training.stacked import StackedNetworks

# Measured gap (2-core Zen 5): parameters 3e-8 apart, terms 5e-7 relative (batched products sum in
# another order); about 10x that.
CLOSE = dict(rtol=5e-6, atol=3e-7)


class TanhEncoder(nn.Module):
    """Not one of CADA's MLPs: exercises the generic (vmap) stacked path."""

    def __init__(self, in_dim: int, latent: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_dim, 2 * latent)
        self.scale = nn.Parameter(torch.ones(2 * latent))
        self.latent = latent

    def forward(self, x):
        out = torch.tanh(self.lin(x)) * self.scale
        return out[:, : self.latent], out[:, self.latent:]


class Odd(FeatureModality):
    kind = "seeds_test_odd"

    def build_encoder(self, in_dim, latent_size):
        return TanhEncoder(in_dim, latent_size)


def aligner(seed, specs=None, **config):
    specs = specs or [{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)}]
    cfg = {"seed": seed, "device": "cpu", "latent_size": 8,
           "training": {"epochs": 3, "batch_size": 16, "warmup": {"cross": {"start": 0, "end": 2, "factor": 2.0}}},
           **config}
    return mmalign.Aligner(specs, cfg)


def check_seeds_match_reference(seeds, data, make, **options):
    built = [make(s) for s in seeds]
    tensors = built[0].training_tensors(data)
    models = [a.build(built[0].dims) for a in built]
    references = [copy.deepcopy(m) for m in models]
    config = built[0].config.training
    histories = train_seeds(models, tensors, config, [torch.Generator().manual_seed(s) for s in seeds],
                            progress=False, **options)
    assert len(histories) == len(seeds)
    reference = config.model_copy(update={"engine": "reference"})
    for s, ref, run_history, model in zip(seeds, references, histories, models):
        history = train(ref, tensors, reference, torch.Generator().manual_seed(s), progress=False)
        for a, b in zip(history, run_history):
            for k in a.terms:
                assert b.terms[k] == pytest.approx(a.terms[k], rel=CLOSE["rtol"], abs=CLOSE["atol"]), (s, k)
        state = model.state_dict()
        assert list(state) == list(ref.state_dict())
        for k, v in ref.state_dict().items():
            assert torch.allclose(state[k], v, **CLOSE), (s, k)
            assert state[k].is_contiguous()
        assert not model.training
    return models


@pytest.mark.parametrize("mode", ["cada2019", "standard"])
def test_seeds_seeds_each_run_matches_its_single_reference_run(mode):
    models = check_seeds_match_reference([0, 1, 2], make_toy_data(), lambda s: aligner(s, reparameterization=mode))
    # different seeds really are different runs
    assert not torch.allclose(models[0].state_dict()["decoders.image_features.2.weight"],
                              models[1].state_dict()["decoders.image_features.2.weight"])


def test_seeds_seeds_graph_loop_matches_reference():
    # graphs=True on a CPU: the static-buffer loop a CUDA graph replays, run without capturing
    check_seeds_match_reference([0, 1], make_toy_data(), lambda s: aligner(s), graphs=True)


def test_seeds_seeds_generic_modules_and_masks_match_eager():
    data = add_masked_feature(make_toy_data(), "odd", seed=1, absent=0.25)
    specs = [{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)},
             Odd(name="odd", source="odd", hidden=(10, 10))]
    check_seeds_match_reference([3, 4], data, lambda s: aligner(s, specs=specs, reduction="mean"))


def test_seeds_state_dicts_load_into_fresh_models():
    a = aligner(0)
    data = make_toy_data()
    tensors = a.training_tensors(data)
    models = [aligner(s).build(a.dims) for s in (0, 1)]
    train_seeds(models, tensors, a.config.training, [torch.Generator().manual_seed(s) for s in (0, 1)], progress=False)
    fresh = aligner(0).build(a.dims)
    fresh.load_state_dict(models[1].state_dict(), strict=True)
    assert torch.equal(fresh.encoders["image_features"].mu.weight, models[1].encoders["image_features"].mu.weight)
    assert isinstance(fresh, AlignedVAE)


def test_seeds_stacked_networks_round_trip_the_weights_exactly():
    a = aligner(0)
    a.training_tensors(make_toy_data())
    models = [aligner(s).build(a.dims) for s in (0, 1, 2)]
    nets = StackedNetworks(models)
    for s, m in enumerate(models):
        state = nets.state_dict(s)
        for k, v in m.state_dict().items():
            assert torch.equal(state[k], v), k


def test_aligner_fit_seeds_equals_aligner_fit_per_seed():
    data = make_toy_data()
    fitted = aligner(0).fit_seeds(data, seeds=[5, 6], progress=False)
    rows = data.sample_features["features"][:7]
    for one, seed in zip(fitted, (5, 6)):
        assert one.config.seed == seed
        ref = aligner(seed)
        ref.fit(data, progress=False)
        mu, logvar = one.encode("image_features", rows)
        mu_ref, logvar_ref = ref.encode("image_features", rows)
        assert torch.allclose(mu, mu_ref, **CLOSE) and torch.allclose(logvar, logvar_ref, **CLOSE)
        assert len(one.history) == 3


def test_seeds_seeds_bf16_runs_finite():
    a = aligner(0)
    tensors = a.training_tensors(make_toy_data())
    models = [aligner(s).build(a.dims) for s in (0, 1)]
    bf16 = a.config.training.model_copy(update={"precision": "bf16"})
    histories = train_seeds(models, tensors, bf16, [torch.Generator().manual_seed(s) for s in (0, 1)], progress=False)
    for history in histories:
        assert all(np.isfinite(list(e.terms.values())).all() for e in history)


def test_seeds_seeds_need_one_generator_per_model():
    a = aligner(0)
    tensors = a.training_tensors(make_toy_data())
    models = [aligner(s).build(a.dims) for s in (0, 1)]
    with pytest.raises(mmalign.ConfigError, match="one generator per model"):
        train_seeds(models, tensors, a.config.training, [torch.Generator()], progress=False)
