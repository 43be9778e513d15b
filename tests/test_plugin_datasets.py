"""A data set a plugin registers works with ``mmalign benchmark NAME`` under its own array names and
with all its modalities; ``mmalign.plugins`` is reachable as documented without importing it first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import mmalign
from mmalign.runs import default_modalities

ROOT = Path(__file__).resolve().parents[1]


def read_mine(data_root):
    """docs/library.md's data: two per-sample arrays (photo, sound), one per-class (description)."""
    rng = np.random.default_rng(0)
    classes, per_class = 10, 30
    labels = np.repeat(np.arange(classes), per_class)
    prototypes = rng.random((classes, 12)).astype(np.float32)
    photo = prototypes[labels] @ rng.random((12, 40)) + 0.1 * rng.random((labels.size, 40))
    sound = prototypes[labels] @ rng.random((12, 20)) + 0.1 * rng.random((labels.size, 20))
    seen = np.flatnonzero(labels < 7)
    return mmalign.AlignmentData(
        labels=labels, class_names=[f"class{i}" for i in range(classes)],
        sample_features={"photo": photo.astype(np.float32), "sound": sound.astype(np.float32)},
        class_features={"description": prototypes},
        splits={"trainval": seen[::2], "test_seen": seen[1::2], "test_unseen": np.flatnonzero(labels >= 7)},
        name="mine",
    )


@pytest.fixture
def mine_plugin():
    module = types.ModuleType("mine_plugin")

    @mmalign.hookimpl
    def register_datasets(register):
        register("mine", read_mine)

    module.register_datasets = register_datasets
    from mmalign.plugins import add_plugin, remove_plugin

    add_plugin(module, "mine")
    yield
    remove_plugin("mine")


def test_plugin_datasets_default_modalities_read_the_plugins_arrays(mine_plugin):
    from mmalign.datasets import load_dataset

    specs = default_modalities("attributes", load_dataset("mine"))
    assert [(s["name"], s["kind"], s["source"]) for s in specs] == [
        ("img", "image_features", "photo"), ("att", "attributes", "description"), ("sound", "image_features", "sound")]


def test_plugin_datasets_builtin_data_keeps_cada_pair():
    from mmalign.datasets import synthetic_like

    data = synthetic_like("CUB", seed=0, feature_dim=8, num_samples=300)
    assert default_modalities("attributes", data) == [{"kind": "image_features", "name": "img"},
                                                      {"kind": "attributes", "name": "att"}]


def test_plugin_datasets_benchmark_runs_on_own_arrays_and_every_modality(mine_plugin, tmp_path, capsys):
    from mmalign.cli import main

    out = tmp_path / "out"
    code = main(["benchmark", "mine", "--epochs", "2", "--classifier-epochs", "2",
                 "--out", str(out), "--no-progress", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    (record,) = json.loads((out / "results.json").read_text())
    assert record["modalities"] == ["img", "att", "sound"]
    assert record["side_info"] == "description"
    assert "img+att+sound" in capsys.readouterr().out


def test_plugin_datasets_plugins_module_reachable_without_import(tmp_path):
    """The README's ``mmalign.plugins.add_plugin(...)`` after a bare ``import mmalign``."""
    script = "import mmalign\nprint(mmalign.plugins.add_plugin.__name__, mmalign.datasets.load_dataset.__name__)\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["add_plugin", "load_dataset"]
    missing = subprocess.run([sys.executable, "-c", "import mmalign; mmalign.no_such_thing"], cwd=tmp_path,
                             capture_output=True, text=True, env=env)
    assert "module 'mmalign' has no attribute 'no_such_thing'" in missing.stderr
