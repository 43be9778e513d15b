"""Loss families beyond parameter-free ones, through the register_losses hook: a family that reads
the batch's labels and class tables, one that owns a trainable module (saved and loaded with the
model), and an adversarial one whose critic has its own optimiser and steps, trains end to end and
resumes exactly after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict
from safetensors.torch import load_file
from torch import nn

import mmalign
from conftest import make_toy_data
from mmalign.plugins import add_plugin, remove_plugin
from mmalign.resume import STATE_FILE, load_training_state
from mmalign.terms import LossTerm

HERE = Path(__file__).resolve().parent
SPECS = [{"kind": "image_features", "name": "img", "hidden": (32, 24)},
         {"kind": "attributes", "name": "att", "hidden": (16, 12)}]
CALLS: dict[str, int] = {"critic": 0}


# --- a labelled family: the first latent coordinate of each image must equal 5 x its class's first attribute
def class_target(inputs, name):
    if name != "img":
        return torch.zeros_like(inputs.labels, dtype=inputs.dtype)
    target = 5.0 * inputs.class_table("att")[inputs.labels, 0]
    return (inputs.posterior("img")[0][..., 0] - target).pow(2)


# --- a module-owning family: a linear probe on the image latents must predict the class
def build_probe(spec):
    return nn.Linear(spec.latent_size, spec.num_classes)


def probe(inputs, name):
    logits = inputs.module("probe")(inputs.posterior(name)[0])
    return nn.functional.cross_entropy(logits.flatten(0, -2), inputs.seen_labels.flatten(),
                                       reduction="none").view(inputs.seen_labels.shape)


# --- an adversarial family: a bounded critic between the two modalities' latents
class DuelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    critic_steps: int = 2
    critic_lr: float = 1e-3


def build_critic(spec):
    return nn.Sequential(nn.Linear(spec.latent_size, 8), nn.Tanh(), nn.Linear(8, 1), nn.Tanh())


def duel(inputs, a, b):
    f = inputs.module("duel")
    return f(inputs.latents[a])[..., 0] - f(inputs.latents[b])[..., 0]


def duel_critic(inputs, a, b):
    CALLS["critic"] += 1
    f = inputs.module("duel")
    return f(inputs.latents[b])[..., 0] - f(inputs.latents[a])[..., 0]


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm("classtarget", "each", class_target, description="latent 0 = 5 x attribute 0 of the class"))
    register(LossTerm("probe", "each", probe, build=build_probe, description="class probe on the latent means"))
    register(LossTerm("duel", "unordered", duel, options=DuelOptions, build=build_critic, critic=duel_critic,
                      description="a critic between the modalities"))


PLUGIN = types.SimpleNamespace(register_losses=register_losses)


@pytest.fixture
def families():
    yield add_plugin(PLUGIN, "test-loss-modules")
    remove_plugin("test-loss-modules")


def config(epochs=4, **warmup):
    return {"seed": 0, "device": "cpu", "latent_size": 8,
            "training": {"epochs": epochs, "batch_size": 16, "lr": 3e-3,
                         "warmup": {"cross": {"factor": 1.0}, "align": {"factor": 1.0},
                                    **{k: {"factor": v} for k, v in warmup.items()}}}}


def test_labelled_family_reads_the_labels_and_class_table(families):
    data = make_toy_data()
    a = mmalign.Aligner(SPECS, config(epochs=25, classtarget=10.0))
    a.fit(data, progress=False)
    idx = data.split("trainval")
    mu, _ = a.encode("img", data.sample_features["features"][idx])
    target = 5.0 * a.normalisers["att"](torch.as_tensor(data.class_features["attributes"]))[data.labels[idx], 0]
    assert np.corrcoef(mu[:, 0].numpy(), target.numpy())[0, 1] > 0.9


def test_module_family_trains_its_module_and_it_round_trips(families, tmp_path):
    data = make_toy_data()
    a = mmalign.Aligner(SPECS, config(epochs=15, probe=1.0))
    a.fit(data, progress=False)
    keys = [k for k in a.model.state_dict() if k.startswith("loss_modules.probe.")]
    assert keys == ["loss_modules.probe.weight", "loss_modules.probe.bias"]
    idx = data.split("trainval")
    mu, _ = a.encode("img", data.sample_features["features"][idx])
    classes = np.unique(data.labels[idx])
    with torch.no_grad():
        predicted = classes[a.model.loss_modules["probe"](mu).argmax(1).numpy()]
    assert (predicted == data.labels[idx]).mean() > 0.35  # chance: 1/8; an untrained probe stays near it
    a.save(tmp_path / "m")
    again = mmalign.Aligner.load(tmp_path / "m")
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])
    assert json.loads((tmp_path / "m" / "config.json").read_text())["num_classes"] == len(classes)


def test_adversarial_family_trains_its_critic_with_its_own_optimiser(families):
    data = make_toy_data()
    a = mmalign.Aligner(SPECS, {**config(epochs=3, duel=1.0), "loss_options": {"duel": {"critic_steps": 3}}})
    vae_params = {id(p) for p in a.build({"img": 40, "att": 10}).vae_parameters()}
    critic = a.model.loss_modules["duel"]
    assert not any(id(p) in vae_params for p in critic.parameters())  # the VAE's optimiser leaves it alone
    CALLS["critic"] = 0
    history = a.fit(data, progress=False)
    steps = 3 * (-(-data.split("trainval").size // 16))
    assert CALLS["critic"] == 3 * steps  # critic_steps updates before every VAE step, one pair
    assert "duel/att|img" in history[-1].terms


def test_loss_options_are_validated_naming_the_key(families):
    with pytest.raises(mmalign.ConfigError, match=r"loss_options.duel.*critic_stepz"):
        mmalign.Aligner(SPECS, {**config(duel=1.0), "loss_options": {"duel": {"critic_stepz": 3}}})
    with pytest.raises(mmalign.ConfigError, match=r"loss_options.nosuch"):
        mmalign.Aligner(SPECS, {**config(), "loss_options": {"nosuch": {}}})
    with pytest.raises(mmalign.ConfigError, match=r"loss_options.probe.*takes no options"):
        mmalign.Aligner(SPECS, {**config(), "loss_options": {"probe": {"x": 1}}})


def child(folder: str, epochs: int, sleep: float) -> None:
    """Run in a subprocess: the adversarial run with a training state every epoch."""
    add_plugin(PLUGIN, "test-loss-modules")
    torch.set_num_threads(1)

    class Slow(mmalign.training.Callback):
        def on_epoch_end(self, state, log):
            time.sleep(sleep)

    a = mmalign.Aligner(SPECS, {**config(epochs=epochs, duel=1.0, probe=1.0), "loss_options": {"duel": {"critic_steps": 2}}})
    a.fit(make_toy_data(), progress=False, checkpoint_dir=folder, checkpoint_every=1, resume=True, callbacks=[Slow()])
    a.save(Path(folder) / "final")


def _run(folder: Path, epochs: int, sleep: float) -> subprocess.Popen:
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_loss_modules as t; t.child({str(folder)!r}, {epochs}, {sleep})"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_adversarial_run_killed_resumes_to_the_same_bits(tmp_path):
    epochs = 6
    whole = _run(tmp_path / "whole", epochs, 0.0)
    killed_dir = tmp_path / "killed"
    killed = _run(killed_dir, epochs, 1.0)
    deadline = time.monotonic() + 120
    while True:
        state = killed_dir / STATE_FILE
        if state.exists():
            try:
                if load_training_state(killed_dir)["epochs_done"] >= 2:
                    break
            except mmalign.MmalignError:
                pass
        assert killed.poll() is None, killed.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the run never saved two epochs"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    saved = load_training_state(killed_dir)
    assert 2 <= saved["epochs_done"] < epochs and list(saved["critics"]) == ["duel"]
    assert any(k.startswith("loss_modules.duel.") for k in saved["model"])
    resumed = _run(killed_dir, epochs, 0.0)
    for proc in (whole, resumed):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    a = load_file(str(tmp_path / "whole" / "final" / "model.safetensors"))
    b = load_file(str(killed_dir / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("loss_modules.duel.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
