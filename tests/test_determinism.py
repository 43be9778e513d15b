"""``--deterministic``, and the named random streams: one seed, independent streams, so changing
one (the classifier's) moves nothing that another drives (the VAE's weights, the few-shot split, the
latent noise)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import malformed
import mmalign
from mmalign.benchmarks.classification import BenchmarkRequest, run_benchmark
from mmalign.cli import main
from mmalign.protocols import seeds
from mmalign.runs import DataSpec


@pytest.fixture
def restore_determinism(monkeypatch):
    """``--deterministic`` switches process-wide flags: put them back after the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


def _train_cli(tmp_path, name: str, *extra: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    folder = tmp_path / "data" / "toy"
    if not folder.exists():
        malformed.write_dataset(tmp_path / "data")
    cfg = malformed.write_toml(tmp_path / f"{name}.toml", malformed.run_config(folder, seed=4, device=device))
    assert main(["train", str(cfg), "--out", str(tmp_path / name), "--epochs", "3", "--no-progress", *extra]) == 0
    return load_file(str(tmp_path / name / "model.safetensors"))


def test_cli_train_deterministic_switches_to_deterministic_kernels_and_keeps_the_cpu_result(
        tmp_path, restore_determinism):
    plain = _train_cli(tmp_path, "plain")
    assert not torch.are_deterministic_algorithms_enabled()
    strict = _train_cli(tmp_path, "strict", "--deterministic")
    assert torch.are_deterministic_algorithms_enabled()        # a non-deterministic kernel would now raise
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    # on the CPU every kernel mmalign uses is deterministic already: the same bits either way
    assert sorted(plain) == sorted(strict) and all(torch.equal(plain[k], strict[k]) for k in plain)


def test_cli_benchmark_deterministic_runs_the_whole_protocol(tmp_path, restore_determinism, capsys):
    folder = malformed.write_dataset(tmp_path / "data")
    argv = ["benchmark", "custom", "--data-dir", str(folder), "--epochs", "1", "--classifier-epochs", "2",
            "--shots", "0", "2", "--device", "cpu", "--no-progress", "--out"]
    assert main([*argv, str(tmp_path / "strict"), "--deterministic"]) == 0
    assert torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    assert main([*argv, str(tmp_path / "plain")]) == 0
    strict, plain = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("strict", "plain"))
    assert [(r["shots"], r["metrics"]) for r in strict] == [(r["shots"], r["metrics"]) for r in plain]
    assert [r["shots"] for r in strict] == [0, 2] and all(set(r["metrics"]) == {"S", "U", "H"} for r in strict)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (on the CPU every kernel is deterministic)")
def test_cli_train_deterministic_on_cuda_repeats_bit_for_bit(tmp_path, restore_determinism):
    first = _train_cli(tmp_path, "a", "--deterministic", device="cuda")
    second = _train_cli(tmp_path, "b", "--deterministic", device="cuda")
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_seeds_each_stream_has_its_own_repeatable_seed():
    for seed in (0, 1, 2**40):
        derived = [seeds.derive_seed(seed, s) for s in seeds.STREAMS]
        assert len(set(derived)) == len(seeds.STREAMS)
        assert derived == [seeds.derive_seed(seed, s) for s in seeds.STREAMS]
    assert seeds.derive_seed(0, "classifier") != seeds.derive_seed(1, "classifier")
    a = seeds.torch_generator(3, "sampling")
    b = seeds.torch_generator(3, "sampling")
    assert torch.equal(torch.randn(5, generator=a), torch.randn(5, generator=b))
    assert np.array_equal(seeds.numpy_rng(3, "fewshot").permutation(9), seeds.numpy_rng(3, "fewshot").permutation(9))


def _spied_benchmark(tmp_path, monkeypatch, run: str, classifier_offset: int):
    """A 2-seed benchmark; records the VAE weights after each fit, the classifier's inputs and its
    weights. ``classifier_offset`` moves the classifier's stream (and only that one)."""
    from mmalign.protocols import protocol

    vae, inputs, outputs = [], [], []
    fit, train_classifier, torch_generator = mmalign.Aligner.fit, protocol.train_classifier, protocol.torch_generator

    def spy_fit(self, *args, **kwargs):
        history = fit(self, *args, **kwargs)
        vae.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return history

    def spy_classifier(x, y, *args, **kwargs):
        inputs.append((x.clone(), y.clone()))
        weight, bias = train_classifier(x, y, *args, **kwargs)
        outputs.append(weight.detach().clone())
        return weight, bias

    def moved(seed, stream, device="cpu"):
        return torch_generator(seed + (classifier_offset if stream == "classifier" else 0), stream, device)

    monkeypatch.setattr(mmalign.Aligner, "fit", spy_fit)
    monkeypatch.setattr(protocol, "train_classifier", spy_classifier)
    monkeypatch.setattr(protocol, "torch_generator", moved)
    folder = tmp_path / "data" / "toy"
    if not folder.exists():
        malformed.write_dataset(tmp_path / "data")
    req = BenchmarkRequest(dataset="toy", data=DataSpec(dataset=str(folder)), seeds=[0, 1], shots=[0, 2], epochs=1,
                           device="cpu", policy="manual", classifier_epochs=2, out=tmp_path / run, progress=False)
    run_benchmark(req, log=lambda line: None)
    monkeypatch.undo()
    return vae, inputs, outputs


def test_seeds_changing_the_classifier_stream_moves_neither_the_vae_nor_the_latents(tmp_path, monkeypatch):
    vae_a, inputs_a, out_a = _spied_benchmark(tmp_path, monkeypatch, "a", classifier_offset=0)
    vae_b, inputs_b, out_b = _spied_benchmark(tmp_path, monkeypatch, "b", classifier_offset=1000)
    assert len(vae_a) == len(vae_b) == 2 and len(inputs_a) == len(inputs_b) == 4
    # the classifier did change ...
    assert all(not torch.equal(a, b) for a, b in zip(out_a, out_b))
    # ... but not the VAE of either seed (seed 1's is trained after seed 0's classifiers ran) ...
    for a, b in zip(vae_a, vae_b):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # ... nor the few-shot split and the noisy latents the classifier is trained on
    for (xa, ya), (xb, yb) in zip(inputs_a, inputs_b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
