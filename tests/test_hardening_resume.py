"""Interrupted runs lose nothing: kill -9 a training run and resume it to the same bits; kill a
benchmark and keep every finished record; the same seed gives the same losses, weights and metrics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import malformed
import mmalign
from mmalign.resume import STATE_FILE, load_training_state

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 30
KILL_AFTER = 3
MODALITIES = [
    {"kind": "image_features", "name": "img", "hidden": [64, 48]},
    {"kind": "attributes", "name": "att", "hidden": [32, 24]},
]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("MMALIGN_DEBUG", None)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmalign.cli", *args]


def _epochs_done(folder: Path) -> int:
    """Epochs recorded in the training state (0 while there is none or it is being replaced)."""
    try:
        with safe_open(str(folder / STATE_FILE), framework="pt") as fh:
            return int((fh.metadata() or {}).get("epochs_done", 0))
    except Exception:
        return 0


def _kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}; stderr: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def _history_terms(folder: Path) -> list[dict[str, float]]:
    return [h.terms for h in load_training_state(folder)["history"]]


def _assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert sorted(ta) == sorted(tb)
    different = [k for k in ta if ta[k].dtype != tb[k].dtype or not torch.equal(ta[k], tb[k])]
    assert not different, f"tensors differ bitwise: {different[:5]}"


@pytest.fixture(scope="module")
def run_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    folder = malformed.write_dataset(root / "data", "toyR", malformed.small_data(per_class=60, feat_dim=64))
    cfg = {"data": {"dataset": str(folder)},
           "aligner": {"latent_size": 8, "training": {"epochs": EPOCHS, "batch_size": 16}},
           "modalities": MODALITIES}
    return root, folder, malformed.write_toml(root / "cfg.toml", cfg)


#: every training path the CLI exposes: the default (engine auto), the plain reference loop, and bf16,
#: on the CPU and (CUDA graph, stacked-free single run) on a GPU
ENGINE_FLAGS = {"auto": [], "reference": ["--engine", "reference"], "auto-bf16": ["--precision", "bf16"],
                "cuda-auto": ["--device", "cuda"], "cuda-reference": ["--device", "cuda", "--engine", "reference"]}
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


@pytest.mark.parametrize("engine", [pytest.param(e, marks=NO_CUDA) if e.startswith("cuda") else e for e in ENGINE_FLAGS])
def test_resume_after_sigkill_gives_bitwise_identical_weights(run_setup, engine):
    root, _, cfg = run_setup
    a, b = root / f"A-{engine}", root / f"B-{engine}"
    train = ["train", str(cfg), "--checkpoint-every", "1", "--no-progress", "--keep-state", *ENGINE_FLAGS[engine]]
    # the reference and the run to kill start together (the interpreter start-up dominates)
    ref = subprocess.Popen(_cli(*train, "--out", str(a)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=_env())
    victim = subprocess.Popen(_cli(*train, "--out", str(b)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env())
    _kill_when(victim, lambda: _epochs_done(b) >= KILL_AFTER, f"{KILL_AFTER} saved epochs")

    state = load_training_state(b)  # the state a kill left behind is complete and readable
    assert KILL_AFTER <= state["epochs_done"] < EPOCHS
    assert len(state["history"]) == state["epochs_done"]
    assert not (b / "model.safetensors").exists()
    # a kill during a save leaves a temp file beside the state; it must not matter
    (b / f".{STATE_FILE}.k1ll3d.tmp").write_bytes(b"\x00half a safetensors file")

    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    resumed = subprocess.run(_cli(*train, "--out", str(b), "--resume"), capture_output=True, text=True,
                             env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr

    _assert_same_tensors(a / "model.safetensors", b / "model.safetensors")
    _assert_same_tensors(a / "normalisers.safetensors", b / "normalisers.safetensors")
    assert _history_terms(a) == _history_terms(b), "the per-epoch losses differ"
    assert _epochs_done(b) == EPOCHS
    saved = json.loads((b / "config.json").read_text())["aligner"]["training"]
    assert (saved["engine"], saved["precision"]) == {"auto": ("auto", "fp32"), "reference": ("reference", "fp32"),
                                                     "auto-bf16": ("auto", "bf16"), "cuda-auto": ("auto", "fp32"),
                                                     "cuda-reference": ("reference", "fp32")}[engine]


def test_resume_ignores_stray_temp_files_from_a_kill_mid_save(tmp_path, monkeypatch):
    """In-process: stop after epoch 2 as a kill would, leave temp files a killed save leaves, resume."""
    import mmalign.aligner as aligner_module

    data = malformed.small_data()
    config = {"latent_size": 4, "training": {"epochs": 4, "batch_size": 16}}
    mods = [{"kind": "image_features", "name": "img", "hidden": [16, 16]},
            {"kind": "attributes", "name": "att", "hidden": [8, 8]}]
    ref = mmalign.Aligner(mods, config)
    ref.fit(data, progress=False, checkpoint_dir=tmp_path / "A", checkpoint_every=1)
    ref.save(tmp_path / "A")

    real_save = aligner_module.save_training_state

    class Killed(BaseException):
        pass

    def save_then_die(folder, *args):
        real_save(folder, *args)
        if args[4] == 2:  # epochs_done
            raise Killed

    monkeypatch.setattr(aligner_module, "save_training_state", save_then_die)
    b = tmp_path / "B"
    with pytest.raises(Killed):
        mmalign.Aligner(mods, config).fit(data, progress=False, checkpoint_dir=b, checkpoint_every=1)
    monkeypatch.setattr(aligner_module, "save_training_state", real_save)
    state_bytes = (b / STATE_FILE).read_bytes()
    (b / f".{STATE_FILE}.a8Zq1x.tmp").write_bytes(state_bytes[: len(state_bytes) // 2])  # cut mid-write
    (b / f".{STATE_FILE}.00000000.tmp").write_bytes(b"")
    (b / ".model.safetensors.Qw3rty.tmp").write_bytes(b"garbage")

    again = mmalign.Aligner(mods, config)
    again.fit(data, progress=False, checkpoint_dir=b, checkpoint_every=1, resume=True)
    again.save(b)
    _assert_same_tensors(tmp_path / "A" / "model.safetensors", b / "model.safetensors")
    assert [h.terms for h in again.history] == [h.terms for h in ref.history]


# -- benchmark: kill after the first record, resume ----------------------------------------------

def _records(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []


BENCH_SEEDS = 3


def test_benchmark_killed_after_first_record_keeps_it_and_resume_skips_it(run_setup):
    root, _, _ = run_setup
    folder = malformed.write_dataset(root / "bench_data")  # 120 images: the recipe's networks are large
    out = root / "bench"
    argv = ["benchmark", "custom", "--data-dir", str(folder), "--epochs", "1", "--seeds", str(BENCH_SEEDS),
            "--policy", "test", "--device", "cpu", "--out", str(out), "--no-progress"]
    victim = subprocess.Popen(_cli(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    results = out / "results.json"
    _kill_when(victim, lambda: len(_records(results)) >= 1, "the first benchmark record")

    kept = _records(results)
    assert 1 <= len(kept) <= BENCH_SEEDS
    assert [r["seed"] for r in kept] == list(range(len(kept)))

    resumed = subprocess.run(_cli(*argv, "--resume"), capture_output=True, text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    for r in kept:
        assert f"resume: seed {r['seed']}, 0 shots already in {results}; skipped" in resumed.stdout
    final = _records(results)
    assert len(final) == BENCH_SEEDS
    assert sorted(r["seed"] for r in final) == list(range(BENCH_SEEDS)), "a record is missing or duplicated"
    assert final[: len(kept)] == kept, "a finished record changed"


# -- determinism ---------------------------------------------------------------------------------

def _trained(data, seed=3):
    aligner = mmalign.Aligner(
        [{"kind": "image_features", "name": "img", "hidden": [16, 16]}, {"kind": "attributes", "name": "att", "hidden": [8, 8]}],
        {"latent_size": 4, "seed": seed, "training": {"epochs": 2, "batch_size": 16}},
    )
    aligner.fit(data, progress=False)
    return aligner


def test_determinism_same_seed_same_losses_weights_and_metrics():
    from mmalign.protocols.evaluate import evaluate

    data = malformed.small_data()
    first, second = _trained(data), _trained(data)
    assert [h.terms for h in first.history] == [h.terms for h in second.history]
    sa, sb = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    for setting, shots in (("gzsl", 0), ("zsl", 2)):
        ra = evaluate(first, data, setting=setting, shots=shots, policy="manual", epochs=5, seed=7)
        rb = evaluate(second, data, setting=setting, shots=shots, policy="manual", epochs=5, seed=7)
        metric = ("S", "U", "H") if setting == "gzsl" else ("top1",)
        for k in metric + ("epochs", "train_latents"):
            assert ra[k] == rb[k], (setting, k, ra[k], rb[k])
    other = _trained(data, seed=4)
    assert not all(torch.equal(sa[k], other.model.state_dict()[k]) for k in sa), "the seed must matter"


def test_determinism_benchmark_records_repeat(tmp_path):
    from mmalign.benchmarks.classification import BenchmarkRequest, run_benchmark
    from mmalign.runs import DataSpec

    folder = malformed.write_dataset(tmp_path / "data")
    records = []
    for run in ("a", "b"):
        req = BenchmarkRequest(dataset="toy", data=DataSpec(dataset=str(folder)), seeds=[0], epochs=2, device="cpu",
                               policy="test", out=tmp_path / run, progress=False)
        records.append(run_benchmark(req, log=lambda line: None))
    (a,), (b,) = records
    assert a.metrics == b.metrics and set(a.metrics) == {"S", "U", "H"}
    assert a.config_hash == b.config_hash
    assert set(a.seconds) == {"vae", "sampling", "classifier"}  # wall time per phase, in every record
