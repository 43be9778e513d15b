"""Per-sample features left on disk: rows read exactly, the same training as resident features, and
a run on a file larger than the process may allocate with a peak RSS well below the file size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

import malformed
import mmalign
from mmalign.datasets import map_features
from mmalign.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def write_large_safetensors(path: Path, rows: int, dim: int, block_rows: int = 4096) -> None:
    """A ``(rows, dim)`` float32 tensor ``features`` written block by block (one random block repeated),
    never held in memory whole."""
    header = json.dumps({"features": {"dtype": "F32", "shape": [rows, dim], "data_offsets": [0, rows * dim * 4]}})
    header += " " * (-len(header) % 8)
    block = np.random.default_rng(0).random((block_rows, dim), dtype=np.float32).tobytes()
    with open(path, "wb") as fh:
        fh.write(len(header).to_bytes(8, "little") + header.encode())
        for start in range(0, rows, block_rows):
            fh.write(block[: (min(block_rows, rows - start)) * dim * 4])


def test_map_features_reads_rows_across_shards(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.random((7, 5), dtype=np.float32), rng.random((4, 5), dtype=np.float32)
    save_file({"features": a, "labels": np.arange(7)}, str(tmp_path / "a.safetensors"))
    save_file({"features": b}, str(tmp_path / "b.safetensors"))
    feats = map_features([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
    whole = np.concatenate([a, b])
    assert feats.shape == (11, 5) and len(feats) == 11
    idx = np.array([[10, 3, 3], [6, 7, 0]])  # unsorted, repeated, across the shard boundary
    np.testing.assert_array_equal(feats[idx], whole[idx])
    np.testing.assert_array_equal(np.asarray(feats), whole)
    np.testing.assert_array_equal(feats[2:9], whole[2:9])
    with pytest.raises(IndexError):
        feats[np.array([11])]


def test_map_features_names_the_file_and_key_of_bad_input(tmp_path):
    save_file({"features": np.zeros((3, 4), np.float32), "vec": np.zeros(3, np.float32)}, str(tmp_path / "f.safetensors"))
    save_file({"features": np.zeros((3, 2), np.float32)}, str(tmp_path / "g.safetensors"))
    with pytest.raises(DataError, match=r"f\.safetensors: no tensor 'feats'; the file holds \['features', 'vec'\]"):
        map_features(tmp_path / "f.safetensors", "feats")
    with pytest.raises(DataError, match=r"tensor 'vec' must be a 2-D float matrix"):
        map_features(tmp_path / "f.safetensors", "vec")
    with pytest.raises(DataError, match=r"g\.safetensors: tensor 'features' is F32 \[3, 2\], expected float32 rows of dimension 4"):
        map_features([tmp_path / "f.safetensors", tmp_path / "g.safetensors"])
    (tmp_path / "t.safetensors").write_bytes((tmp_path / "f.safetensors").read_bytes()[:-20])
    with pytest.raises(DataError, match="truncated"):
        map_features(tmp_path / "t.safetensors", "features")
    with pytest.raises(DataError, match="no such feature file"):
        map_features(tmp_path / "missing.safetensors")


def _tiny(epochs: int = 2) -> mmalign.Aligner:
    training = {**malformed.TINY_ALIGNER["training"], "epochs": epochs, "batch_size": 16}
    return mmalign.Aligner(malformed.MODALITIES, {**malformed.TINY_ALIGNER, "training": training, "device": "cpu"})


def test_mapped_training_equals_resident_training(tmp_path):
    data = malformed.small_data(per_class=20)
    data.sample_masks["features"] = np.arange(data.num_samples) % 7 != 3  # missing rows: zero-filled alike
    save_file({"features": data.sample_features["features"]}, str(tmp_path / "f.safetensors"))
    resident = _tiny()
    resident.fit(data, progress=False)
    mapped_data = malformed.small_data(per_class=20)
    mapped_data.sample_masks = dict(data.sample_masks)
    mapped_data.sample_features["features"] = map_features(tmp_path / "f.safetensors")
    mapped = _tiny()
    tensors = mapped.training_tensors(mapped_data)
    assert not tensors.resident and tensors.resident is not None
    mapped.fit(mapped_data, progress=False)
    assert [h.terms for h in mapped.history] == [h.terms for h in resident.history]
    for name, value in resident.model.state_dict().items():
        assert torch.equal(mapped.model.state_dict()[name], value), name
    for name in resident.normalisers["img"].state():
        assert torch.equal(mapped.normalisers["img"].state()[name], resident.normalisers["img"].state()[name])
    # evaluation encodes the test rows in chunks, read from the file as well
    scores = [mmalign.evaluate(a, d, setting="gzsl", image="img", side="att", epochs=2,
                              policy="manual", seed=0)
              for a, d in ((resident, data), (mapped, mapped_data))]
    assert {k: scores[1][k] for k in ("S", "U", "H")} == {k: scores[0][k] for k in ("S", "U", "H")}


def test_mapped_training_refuses_non_finite_rows_naming_the_row(tmp_path):
    data = malformed.small_data(per_class=20)
    feats = data.sample_features["features"].copy()
    row = int(data.splits["trainval"][5])
    feats[row, 2] = np.nan
    save_file({"features": feats}, str(tmp_path / "f.safetensors"))
    data.sample_features["features"] = map_features(tmp_path / "f.safetensors")
    with pytest.raises(DataError, match=rf"modality 'img' .*holds NaN or Inf at row {row}"):
        _tiny().fit(data, progress=False)


def test_mapped_training_on_a_file_larger_than_allowed_memory_keeps_rss_low(tmp_path):
    path = tmp_path / "large.safetensors"
    rows, dim = 131_072, 2048  # 1 GiB of float32
    write_large_safetensors(path, rows, dim)
    size = path.stat().st_size
    with safe_open(str(path), framework="np") as fh:  # a valid safetensors file
        assert fh.get_slice("features").get_shape() == [rows, dim]
    limit = 640 << 20
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "tests" / "mapped_worker.py"), str(path), str(limit)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        path.unlink()
    assert not out["loaded_whole"], "the memory limit did not stop reading the file whole"
    assert np.isfinite(out["loss"]) and out["train_rows"] > rows // 2
    mib = {k: out[k] / 2**20 for k in ("peak_rss", "baseline_rss")}
    what = f"peak RSS {mib['peak_rss']:.0f} MiB ({mib['baseline_rss']:.0f} before reading) for a {size / 2**20:.0f} MiB file"
    # the run's own memory (peak above the loaded interpreter) is a fraction of the file; the whole
    # process stays well below it too
    assert out["peak_rss"] - out["baseline_rss"] < size / 4, what
    assert out["peak_rss"] < 0.7 * size, what
    print(f"{what}, {time.perf_counter() - started:.1f} s")
