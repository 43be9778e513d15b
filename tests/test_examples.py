"""The tutorial's plugin package (examples/mmalign_audio_example) installs and trains, as a user
of the documentation would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mmalign_audio_example"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    from test_plugins import install_into

    return install_into(tmp_path_factory.mktemp("site_example"), EXAMPLE)


def _run(code: str, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
           "MMALIGN_PLUGINS": "audio", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_example_plugin_is_listed_by_the_cli(installed_example):
    out = _run("import sys; from mmalign.cli import main; sys.exit(main(['plugins', '--json']))", installed_example)
    assert out.returncode == 0, out.stderr
    row = {r["name"]: r for r in json.loads(out.stdout)}["audio"]
    assert row["modalities"] == ["audio"] and row["distribution"] == "mmalign-audio-example"


def test_example_plugin_trains_and_reloads_by_its_key(installed_example, tmp_path):
    code = f"""
import json, numpy as np, mmalign
from conftest import make_toy_data
data = make_toy_data()
data.sample_features["audio"] = np.random.default_rng(0).random((data.num_samples, 12)).astype(np.float32)
a = mmalign.Aligner([{{"kind": "audio", "name": "aud", "hidden": (16, 16)}}, {{"kind": "attributes", "hidden": (16, 16)}}],
                    {{"latent_size": 4, "training": {{"epochs": 2, "batch_size": 16}}}})
a.fit(data, progress=False)
a.save({str(tmp_path / 'ckpt')!r})
b = mmalign.Aligner.load({str(tmp_path / 'ckpt')!r})
same = np.array_equal(a.embed("aud", data.sample_features["audio"][:4]), b.embed("aud", data.sample_features["audio"][:4]))
print(json.dumps({{"normaliser": type(b.normalisers["aud"]).__name__, "same": bool(same), "plugin": b.describe()["modalities"][0]["plugin"]}}))
"""
    out = _run(code, installed_example)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {"normaliser": "MinMax", "same": True, "plugin": "audio"}
