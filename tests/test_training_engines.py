"""Engine ``auto`` against engine ``reference`` (the plain loop): same seed, same batches and noise,
so losses and weights agree to floating-point rounding in fp32."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import add_masked_feature, make_toy_data

import mmalign
from mmalign.model import AlignedVAE, LossWeights, compute_terms
from mmalign.losses import noise_shape
from mmalign.modality import FeatureModality
from mmalign.training import new_optimizer, train
from mmalign.training.optim import make_optimizer
from mmalign.training.steps import PlainStep

# Measured gap (2-core Zen 5, 4 epochs of toy data): parameters 1.5e-8 apart (one fp32 rounding at
# their size), terms 4e-7 relative: the paths sum the same products in another order (oneDNN vs
# MKL, fused vs single-tensor Adam). About 10x that, so a real divergence (a wrong term, a skipped
# step, another random number) fails.
CLOSE = dict(rtol=5e-6, atol=2e-7)


class Vec(FeatureModality):
    kind = "engine_test_vec"


def aligner(seed=0, epochs=4, specs=None, **config):
    specs = specs or [{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)}]
    cfg = {"seed": seed, "device": "cpu", "latent_size": 8, "training": {"epochs": epochs, "batch_size": 16}, **config}
    return mmalign.Aligner(specs, cfg)


def reference(config):
    return config.model_copy(update={"engine": "reference"})


def auto(config, **update):
    return config.model_copy(update={"engine": "auto", **update})


def both_paths(a, data, precision="fp32", **options):
    """(reference history, reference model, auto history, auto model) from the same initial weights and seed."""
    tensors = a.training_tensors(data)
    model = a.build(a.dims)
    twin = copy.deepcopy(model)
    config = a.config.training
    h_eager = train(model, tensors, reference(config), torch.Generator().manual_seed(a.config.seed), progress=False)
    h_fast = train(twin, tensors, auto(config, precision=precision), torch.Generator().manual_seed(a.config.seed),
                   progress=False, **options)
    return h_eager, model, h_fast, twin


def assert_same_run(h_eager, m_eager, h_fast, m_fast, close=CLOSE):
    assert [e.epoch for e in h_eager] == [e.epoch for e in h_fast]
    for a, b in zip(h_eager, h_fast):
        assert a.terms.keys() == b.terms.keys()
        for k in a.terms:
            assert a.terms[k] == pytest.approx(b.terms[k], rel=close["rtol"], abs=close["atol"]), k
    for (name, p), q in zip(m_eager.named_parameters(), m_fast.parameters()):
        assert torch.allclose(p, q, **close), name
    assert not m_fast.training


@pytest.mark.parametrize("mode,reduction,linear", [
    ("cada2019", "sum", "auto"), ("standard", "sum", "auto"), ("cada2019", "mean", "auto"),
    ("cada2019", "sum", "aten"), ("cada2019", "sum", "onednn"),
])
def test_auto_train_matches_reference_fp32(mode, reduction, linear):
    # 4 epochs cross the cross-reconstruction warm-up boundary too (cross weight 0 until epoch 21)
    a = aligner(reparameterization=mode, reduction=reduction,
                training={"epochs": 4, "batch_size": 16, "warmup": {"cross": {"start": 1, "end": 3, "factor": 2.0}}})
    assert_same_run(*both_paths(a, make_toy_data(), linear=linear))


def test_auto_train_matches_reference_three_modalities_with_masks_and_pair_weights():
    data = add_masked_feature(make_toy_data(), "audio", seed=3, absent=0.3)
    specs = [{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)},
             Vec(name="audio", source="audio", hidden=(12, 10))]
    a = aligner(specs=specs, pair_weights={"cross/audio->image_features": 0.5, "align/attributes|audio": 0.0},
                training={"epochs": 3, "batch_size": 16, "warmup": {"cross": {"start": 0, "end": 2, "factor": 1.0}}})
    assert_same_run(*both_paths(a, data))


def test_engine_compute_terms_equals_the_model_forward_and_its_gradients():
    torch.manual_seed(0)
    dims = {"img": 20, "att": 7, "snd": 5}
    model = AlignedVAE({n: Vec(name=n, hidden=(16, 12)) for n in dims}, dims, latent_size=6)
    g = torch.Generator().manual_seed(1)
    batch = {n: torch.rand(8, d, generator=g) for n, d in dims.items()}
    for weights in (LossWeights(kl=0.2, cross=1.3, align=4.1), LossWeights(kl=0.2, cross=0.0, align=4.1)):
        ref = model(batch, weights, None, torch.Generator().manual_seed(7))
        model.zero_grad()
        ref["loss"].backward()
        ref_grads = [p.grad.clone() for p in model.parameters()]
        gen = torch.Generator().manual_seed(7)
        eps = {n: torch.randn(noise_shape(model.reparameterization, 8, 6), generator=gen)[None] for n in model.names}
        one = {n: x[None] for n, x in batch.items()}
        # every family on, weights from a tensor: what a captured or compiled step computes
        ours = compute_terms(model, model.own_encode, model.own_decode, one, {}, eps,
                             torch.tensor([weights[f] for f in model.families]))[0]
        assert ours.shape == (len(model.term_names()),)
        assert torch.allclose(ours, torch.stack([ref[k] for k in model.term_names()]), rtol=1e-6, atol=1e-5)
        model.zero_grad()
        ours[-1].backward()
        for p, r in zip(model.parameters(), ref_grads):
            assert torch.allclose(p.grad, r, rtol=1e-5, atol=1e-6)


def test_step_draw_consumes_the_generator_like_the_reference_code():
    # the reference train step: randperm for the batch, then one randn per modality in the forward
    step = PlainStep(1, 30, 8, ["a", "b"], "cada2019", 6, ["recon"], 1, None, None, torch.device("cpu"), torch.float32)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    idx, eps = step.draw(g1)
    assert torch.equal(idx, torch.randperm(30, generator=g2)[:8])
    assert torch.equal(eps["a"], torch.randn(8, 1, generator=g2))
    assert torch.equal(eps["b"], torch.randn(8, 1, generator=g2))


def test_auto_onednn_linear_matches_aten_values_and_gradients():
    from mmalign.training.onednn import OneDnnLinear, available

    if not available():
        pytest.skip("no oneDNN in this torch build")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5, bias=False))
    twin = copy.deepcopy(net)
    x = torch.rand(16, 30, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    net(x).square().sum().backward()
    mode = OneDnnLinear()
    with mode:
        out = twin(x2)
    out.square().sum().backward()
    assert torch.allclose(x.grad, x2.grad, rtol=1e-5, atol=1e-6)
    for p, q in zip(net.parameters(), twin.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("vendor, route", [("GenuineIntel", None), ("AuthenticAMD", "OneDnnLinear")])
def test_auto_linear_route_is_mkl_on_intel_and_onednn_elsewhere(monkeypatch, vendor, route):
    """Engine auto's fp32 CPU products: MKL (no mode) on Intel CPUs, where MKL's AVX-512 kernels are
    faster, oneDNN on others; an explicit ``linear`` choice is kept either way."""
    from mmalign.training import engines, onednn

    if not onednn.available():
        pytest.skip("no oneDNN in this torch build")
    monkeypatch.setattr(onednn, "cpu_vendor", lambda: vendor)
    config = mmalign.TrainConfig(engine="auto")
    cpu = torch.device("cpu")
    mode = engines._linear_mode(config, cpu, "auto")
    assert (None if mode is None else type(mode).__name__) == route
    assert isinstance(engines._linear_mode(config, cpu, "onednn"), onednn.OneDnnLinear)
    assert engines._linear_mode(config, cpu, "aten") is None


def test_auto_fused_adam_matches_the_reference_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    twin = copy.deepcopy(model)
    config = aligner().config.training
    opts = [make_optimizer(model.parameters(), config, fused=False), make_optimizer(twin.parameters(), config)]
    x = torch.randn(16, 30)
    for _ in range(20):
        for m, opt in zip((model, twin), opts):
            opt.zero_grad()
            m(x).abs().sum().backward()
            opt.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)


def test_auto_given_optimizer_resumes_like_reference():
    a = aligner(epochs=4)
    data = make_toy_data()
    tensors = a.training_tensors(data)
    config = a.config.training
    m1 = a.build(a.dims)
    m2 = copy.deepcopy(m1)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    o1 = new_optimizer(m1.parameters(), reference(config), torch.device("cpu"))
    o2 = new_optimizer(m2.parameters(), auto(config), torch.device("cpu"))
    half = config.model_copy(update={"epochs": 2})
    seen = []

    class Spy(mmalign.Callback):  # e.g. a checkpoint: sees each epoch and the optimiser's state
        def on_epoch_end(self, state, logs):
            seen.append((state.epoch, len(state.histories[0]), len(o2.state)))

    train(m1, tensors, reference(half), g1, optimizer=o1, progress=False)
    train(m2, tensors, auto(half), g2, optimizer=o2, progress=False, callbacks=[Spy()])
    assert seen == [(0, 1, 20), (1, 2, 20)]
    # a state saved from either optimiser loads into the other and training continues the same run
    o1b = new_optimizer(m1.parameters(), reference(config), torch.device("cpu"))
    o1b.load_state_dict(o1.state_dict())
    o2b = new_optimizer(m2.parameters(), auto(config), torch.device("cpu"))
    o2b.load_state_dict(o2.state_dict())
    h1 = train(m1, tensors, reference(config), g1, optimizer=o1b, start_epoch=2, progress=False)
    h2 = train(m2, tensors, auto(config), g2, optimizer=o2b, start_epoch=2, progress=False)
    assert_same_run(h1, m1, h2, m2)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        s1, s2 = o1b.state[p1], o2b.state[p2]
        assert torch.equal(s1["step"].cpu(), s2["step"].cpu())
        assert torch.allclose(s1["max_exp_avg_sq"], s2["max_exp_avg_sq"], rtol=1e-4, atol=1e-9)


def test_auto_bf16_trains_finite_and_close_to_fp32():
    a = aligner(epochs=6)
    data = make_toy_data()
    h_eager, _, h_bf16, model = both_paths(a, data, precision="bf16")
    assert all(np.isfinite(list(e.terms.values())).all() for e in h_bf16)
    for e32, e16 in zip(h_eager, h_bf16):
        assert e16.terms["loss"] == pytest.approx(e32.terms["loss"], rel=0.05)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_engine_options_are_validated_and_threads_restored():
    a = aligner(epochs=1)
    data = make_toy_data()
    tensors = a.training_tensors(data)
    model = a.build(a.dims)
    config = a.config.training
    with pytest.raises(mmalign.ConfigError, match="precision"):
        train(model, tensors, config.model_copy(update={"precision": "fp16"}), torch.Generator(), progress=False)
    with pytest.raises(mmalign.ConfigError, match="linear"):
        train(model, tensors, config, torch.Generator(), progress=False, linear="blas")
    with pytest.raises(mmalign.ConfigError, match="onednn"):
        train(model, tensors, auto(config, precision="bf16"), torch.Generator(), progress=False, linear="onednn")
    with pytest.raises(mmalign.ConfigError, match="reference"):
        train(model, tensors, reference(config), torch.Generator(), progress=False, graphs=True)
    with pytest.raises(mmalign.ConfigError, match="engine 'auto'"):
        mmalign.Aligner(["image_features", "attributes"], {"training": {"engine": "reference", "precision": "bf16"}})
    before = torch.get_num_threads()
    train(model, tensors, config, torch.Generator(), progress=False, num_threads=1)
    assert torch.get_num_threads() == before


def test_auto_train_raises_on_non_finite_loss():
    a = aligner(epochs=1)
    data = make_toy_data()
    tensors = a.training_tensors(data)
    tensors.sample["image_features"][3, 0] = float("inf")
    model = a.build(a.dims)
    with pytest.raises(mmalign.TrainingError, match="non-finite"):
        train(model, tensors, a.config.training.model_copy(update={"epochs": 3}), torch.Generator(), progress=False)


@pytest.mark.parametrize("warmup", [{"start": 1, "end": 3, "factor": 2.0}, {"start": 0, "end": 2, "factor": 1.0}])
def test_auto_graph_loop_matches_reference(warmup):
    # graphs=True on a CPU: the static-buffer loop a CUDA graph replays (random numbers written with
    # out=, every family on with its weight from a tensor), run without capturing
    a = aligner(training={"epochs": 4, "batch_size": 16, "warmup": {"cross": warmup}})
    assert_same_run(*both_paths(a, make_toy_data(), graphs=True))


def test_graph_loop_resumes_a_given_optimizer_like_reference():
    a = aligner(epochs=3)
    data = make_toy_data()
    tensors, config = a.training_tensors(data), a.config.training
    m1 = a.build(a.dims)
    m2 = copy.deepcopy(m1)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    o1 = new_optimizer(m1.parameters(), reference(config), torch.device("cpu"))
    o2 = new_optimizer(m2.parameters(), auto(config), torch.device("cpu"), graphs=True)
    half = config.model_copy(update={"epochs": 1})
    train(m1, tensors, reference(half), g1, optimizer=o1, progress=False)
    train(m2, tensors, auto(half), g2, optimizer=o2, progress=False, graphs=True)
    assert not o2.param_groups[0]["capturable"]  # the caller's flags come back (no capture on a CPU)
    h1 = train(m1, tensors, reference(config), g1, optimizer=o1, start_epoch=1, progress=False)
    h2 = train(m2, tensors, auto(config), g2, optimizer=o2, start_epoch=1, progress=False, graphs=True)
    assert_same_run(h1, m1, h2, m2)


def test_auto_graph_warmup_state_is_put_back():
    # the warm-up steps before a capture change weights and Adam state; both must come back exactly
    from mmalign.training.graphs import _restore, _snapshot

    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), amsgrad=True)
    params = list(model.parameters())
    for fresh in (True, False):
        before = [p.detach().clone() for p in params]
        state_before = {k: v.clone() for k, v in opt.state[params[0]].items()} if not fresh else None
        saved = _snapshot(params, opt)
        for _ in range(3):
            model(torch.randn(5, 4)).square().sum().backward()
            opt.step()
        _restore(saved, params, opt)
        assert all(torch.equal(p, b) and p.grad is None for p, b in zip(params, before))
        state = opt.state[params[0]]
        if fresh:
            assert all(not bool(v.any()) for v in state.values())
        else:
            assert all(torch.equal(state[k], state_before[k]) for k in state_before)
        model(torch.randn(5, 4)).square().sum().backward()
        opt.step()  # a real step, so the next round starts from a non-fresh state
