"""mmalign.fast.train_fast against the eager reference loop (mmalign.training.train): same seed,
same batches and noise, so losses and weights agree to floating-point rounding in fp32."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import add_masked_feature, make_toy_data

import mmalign
from mmalign.engine import AlignedVAE, LossWeights
from mmalign.fast import make_fused_optimizer, noisy_terms, train_fast
from mmalign.fast.forward import draw_step, noise_shape
from mmalign.modality import FeatureModality
from mmalign.training import make_optimizer, train

CLOSE = dict(rtol=1e-4, atol=1e-4)


class Vec(FeatureModality):
    kind = "fast_test_vec"


def aligner(seed=0, epochs=4, specs=None, **config):
    specs = specs or [{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)}]
    cfg = {"seed": seed, "device": "cpu", "latent_size": 8, "training": {"epochs": epochs, "batch_size": 16}, **config}
    return mmalign.Aligner(specs, cfg)


def both_paths(a, data, **fast_options):
    """(eager history, eager model, fast history, fast model) from the same initial weights and seed."""
    tensors = a.training_tensors(data)
    model = a.build(a.dims)
    twin = copy.deepcopy(model)
    h_eager = train(model, tensors, a.config.training, torch.Generator().manual_seed(a.config.seed), progress=False)
    h_fast = train_fast(twin, tensors, a.config.training, torch.Generator().manual_seed(a.config.seed), progress=False,
                        **fast_options)
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
def test_fast_train_matches_eager_fp32(mode, reduction, linear):
    # 4 epochs cross the cross-reconstruction warm-up boundary too (cross weight 0 until epoch 21)
    a = aligner(reparameterization=mode, reduction=reduction,
                training={"epochs": 4, "batch_size": 16, "warmup": {"cross": {"start": 1, "end": 3, "factor": 2.0}}})
    assert_same_run(*both_paths(a, make_toy_data(), linear=linear))


def test_fast_train_matches_eager_three_modalities_with_masks_and_pair_weights():
    data = add_masked_feature(make_toy_data(), "audio", seed=3, absent=0.3)
    specs = [{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)},
             Vec(name="audio", source="audio", hidden=(12, 10))]
    a = aligner(specs=specs, pair_weights={"cross/audio->image_features": 0.5, "align/attributes|audio": 0.0},
                training={"epochs": 3, "batch_size": 16, "warmup": {"cross": {"start": 0, "end": 2, "factor": 1.0}}})
    assert_same_run(*both_paths(a, data))


def test_fast_noisy_terms_equal_the_engine_forward_and_its_gradients():
    torch.manual_seed(0)
    dims = {"img": 20, "att": 7, "snd": 5}
    model = AlignedVAE({n: Vec(name=n, hidden=(16, 12)) for n in dims}, dims, latent_size=6)
    g = torch.Generator().manual_seed(1)
    batch = {n: torch.rand(8, d, generator=g) for n, d in dims.items()}
    for weights in (LossWeights(0.2, 1.3, 4.1), LossWeights(0.2, 0.0, 4.1)):
        ref = model(batch, weights, None, torch.Generator().manual_seed(7))
        model.zero_grad()
        ref["loss"].backward()
        ref_grads = [p.grad.clone() for p in model.parameters()]
        gen = torch.Generator().manual_seed(7)
        eps = {n: torch.randn(noise_shape(model, 8), generator=gen) for n in model.names}
        ours = noisy_terms(model, batch, {}, eps, weights)
        assert ours.shape == (len(model.term_names()),)
        assert torch.allclose(ours, torch.stack([ref[k] for k in model.term_names()]), rtol=1e-6, atol=1e-5)
        model.zero_grad()
        ours[-1].backward()
        for p, r in zip(model.parameters(), ref_grads):
            assert torch.allclose(p.grad, r, rtol=1e-5, atol=1e-6)


def test_fast_draw_step_consumes_the_generator_like_the_eager_step():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    idx, eps = draw_step(30, 8, ["a", "b"], (8, 1), g1, torch.device("cpu"), torch.float32)
    assert torch.equal(idx, torch.randperm(30, generator=g2)[:8])
    assert torch.equal(eps["a"], torch.randn(8, 1, generator=g2))
    assert torch.equal(eps["b"], torch.randn(8, 1, generator=g2))


def test_fast_onednn_linear_matches_aten_values_and_gradients():
    from mmalign.fast.onednn import OneDnnLinear, available

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
    assert mode.chooser.choice  # every product was routed and timed
    assert torch.allclose(x.grad, x2.grad, rtol=1e-5, atol=1e-6)
    for p, q in zip(net.parameters(), twin.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6)


def test_fast_fused_adam_matches_the_eager_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    twin = copy.deepcopy(model)
    config = aligner().config.training
    opts = [make_optimizer(model, config), make_fused_optimizer(twin.parameters(), config)]
    x = torch.randn(16, 30)
    for _ in range(20):
        for m, opt in zip((model, twin), opts):
            opt.zero_grad()
            m(x).abs().sum().backward()
            opt.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)


def test_fast_given_optimizer_resumes_like_eager():
    a = aligner(epochs=4)
    data = make_toy_data()
    tensors = a.training_tensors(data)
    config = a.config.training
    m1 = a.build(a.dims)
    m2 = copy.deepcopy(m1)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    o1, o2 = make_optimizer(m1, config), make_optimizer(m2, config)
    flags = {k: o2.param_groups[0][k] for k in ("fused", "foreach")}
    half = config.model_copy(update={"epochs": 2})
    seen = []

    def on_epoch_end(epoch, history):  # e.g. a checkpoint: sees the optimiser as the caller made it
        seen.append((epoch, len(history), {k: o2.param_groups[0][k] for k in flags}, len(o2.state)))

    train(m1, tensors, half, g1, optimizer=o1, progress=False)
    train_fast(m2, tensors, half, g2, optimizer=o2, progress=False, on_epoch_end=on_epoch_end)
    assert seen == [(0, 1, flags, 20), (1, 2, flags, 20)]
    assert {k: o2.param_groups[0][k] for k in flags} == flags
    # the caller's optimiser holds the fast run's state, so training resumes from it
    h1 = train(m1, tensors, config, g1, optimizer=o1, start_epoch=2, progress=False)
    h2 = train_fast(m2, tensors, config, g2, optimizer=o2, start_epoch=2, progress=False)
    assert_same_run(h1, m1, h2, m2)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        s1, s2 = o1.state[p1], o2.state[p2]
        assert torch.equal(s1["step"], s2["step"])
        assert torch.allclose(s1["max_exp_avg_sq"], s2["max_exp_avg_sq"], rtol=1e-4, atol=1e-9)


def test_fast_bf16_trains_finite_and_close_to_fp32():
    a = aligner(epochs=6)
    data = make_toy_data()
    h_eager, _, h_bf16, model = both_paths(a, data, precision="bf16")
    assert all(np.isfinite(list(e.terms.values())).all() for e in h_bf16)
    for e32, e16 in zip(h_eager, h_bf16):
        assert e16.terms["loss"] == pytest.approx(e32.terms["loss"], rel=0.05)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_fast_options_are_validated_and_threads_restored():
    a = aligner(epochs=1)
    data = make_toy_data()
    tensors = a.training_tensors(data)
    model = a.build(a.dims)
    with pytest.raises(mmalign.ConfigError, match="precision"):
        train_fast(model, tensors, a.config.training, torch.Generator(), progress=False, precision="fp16")
    with pytest.raises(mmalign.ConfigError, match="linear"):
        train_fast(model, tensors, a.config.training, torch.Generator(), progress=False, linear="blas")
    with pytest.raises(mmalign.ConfigError, match="onednn"):
        train_fast(model, tensors, a.config.training, torch.Generator(), progress=False, precision="bf16", linear="onednn")
    before = torch.get_num_threads()
    train_fast(model, tensors, a.config.training, torch.Generator(), progress=False, num_threads=1)
    assert torch.get_num_threads() == before


def test_fast_train_raises_on_non_finite_loss():
    a = aligner(epochs=1)
    data = make_toy_data()
    tensors = a.training_tensors(data)
    tensors.sample["image_features"][3, 0] = float("inf")
    model = a.build(a.dims)
    with pytest.raises(mmalign.TrainingError, match="non-finite"):
        train_fast(model, tensors, a.config.training.model_copy(update={"epochs": 3}), torch.Generator(), progress=False)


@pytest.mark.parametrize("warmup", [{"start": 1, "end": 3, "factor": 2.0}, {"start": 0, "end": 2, "factor": 1.0}])
def test_fast_graph_loop_matches_eager(warmup):
    # graphs=True on a CPU: the static-buffer loop a CUDA graph replays (random numbers written with
    # out=, every family on with its weight from a tensor), run without capturing
    a = aligner(training={"epochs": 4, "batch_size": 16, "warmup": {"cross": warmup}})
    assert_same_run(*both_paths(a, make_toy_data(), graphs=True))


def test_fast_graph_loop_resumes_a_given_optimizer_like_eager():
    a = aligner(epochs=3)
    data = make_toy_data()
    tensors, config = a.training_tensors(data), a.config.training
    m1 = a.build(a.dims)
    m2 = copy.deepcopy(m1)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    o1, o2 = make_optimizer(m1, config), make_optimizer(m2, config)
    half = config.model_copy(update={"epochs": 1})
    train(m1, tensors, half, g1, optimizer=o1, progress=False)
    train_fast(m2, tensors, half, g2, optimizer=o2, progress=False, graphs=True)
    assert not o2.param_groups[0]["capturable"]  # the caller's flags come back
    h1 = train(m1, tensors, config, g1, optimizer=o1, start_epoch=1, progress=False)
    h2 = train_fast(m2, tensors, config, g2, optimizer=o2, start_epoch=1, progress=False, graphs=True)
    assert_same_run(h1, m1, h2, m2)


def test_fast_graph_warmup_state_is_put_back():
    # the warm-up steps before a capture change weights and Adam state; both must come back exactly
    from mmalign.fast.graphs import _restore, _snapshot

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
