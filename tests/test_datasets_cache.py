"""The safetensors cache of res101.mat: built once, verified, rebuilt when stale or corrupt."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import mmalign.datasets.cache as cache
from mmalign.datasets import read_xlsa17, synthetic_like, write_xlsa17_layout
from mmalign.datasets.matfile import read_mat, write_mat


@pytest.fixture
def folder(tmp_path):
    return write_xlsa17_layout(synthetic_like("APY", seed=0, feature_dim=6, num_samples=200), tmp_path, "APY")


def _no_mat_reads(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("res101.mat was parsed although the cache is fresh")

    monkeypatch.setattr(cache, "read_res101", boom)


def test_cached_res101_builds_then_reuses(folder, monkeypatch):
    first = read_xlsa17(folder)
    target = folder / "res101.mat.mmalign.safetensors"
    assert target.is_file()
    with safe_open(str(target), framework="np") as fh:
        meta = fh.metadata()
        assert sorted(fh.keys()) == ["features", "labels"]
    assert meta["source_sha256"] == first.meta["files"]["res101.mat"]["sha256"]
    assert json.loads(meta["shapes"]) == {"features": [200, 6], "labels": [200]}
    _no_mat_reads(monkeypatch)
    again = read_xlsa17(folder)
    np.testing.assert_array_equal(again.sample_features["features"], first.sample_features["features"])
    np.testing.assert_array_equal(again.labels, first.labels)
    assert again.meta["files"]["res101.mat"]["sha256"] == first.meta["files"]["res101.mat"]["sha256"]


def test_cached_res101_touched_source_same_content(folder, monkeypatch):
    read_xlsa17(folder)
    src = folder / "res101.mat"
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    _no_mat_reads(monkeypatch)  # same sha256: no re-parse, and the new mtime is recorded
    read_xlsa17(folder)
    with safe_open(str(folder / "res101.mat.mmalign.safetensors"), framework="np") as fh:
        assert int(fh.metadata()["source_mtime_ns"]) == src.stat().st_mtime_ns


def test_cached_res101_rebuilt_when_source_changes(folder):
    read_xlsa17(folder)
    raw = read_mat(folder / "res101.mat", ["features", "labels"])
    raw["features"] = raw["features"] + 1.0
    write_mat(folder / "res101.mat", raw)
    got = read_xlsa17(folder)
    np.testing.assert_allclose(got.sample_features["features"], raw["features"].T.astype(np.float32))


@pytest.mark.parametrize("damage", ["garbage", "wrong_shape", "extra_tensor"])
def test_cached_res101_rebuilt_when_cache_bad(folder, damage):
    good = read_xlsa17(folder)
    target = folder / "res101.mat.mmalign.safetensors"
    if damage == "garbage":
        target.write_bytes(b"\x00" * 100)
    else:
        with safe_open(str(target), framework="np") as fh:
            meta, arrays = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
        if damage == "wrong_shape":
            arrays["features"] = arrays["features"][:, :5].copy()
        else:
            arrays["junk"] = np.zeros(3, dtype=np.float32)
        save_file(arrays, str(target), metadata=meta)
    got = read_xlsa17(folder)
    np.testing.assert_array_equal(got.sample_features["features"], good.sample_features["features"])
    with safe_open(str(target), framework="np") as fh:
        assert sorted(fh.keys()) == ["features", "labels"] and fh.get_tensor("features").shape == (200, 6)


def test_cache_path_locations(folder, tmp_path, monkeypatch):
    src = folder / "res101.mat"
    assert cache.cache_path(src) == folder / "res101.mat.mmalign.safetensors"
    explicit = cache.cache_path(src, tmp_path / "c")
    assert explicit.parent == tmp_path / "c" and explicit.name.endswith("-res101.mat.safetensors")
    monkeypatch.setattr(cache.os, "access", lambda *a: False)  # read-only data folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_path(src).parent == tmp_path / "xdg" / "mmalign" / "converted"
    read_xlsa17(folder)
    assert len(list((tmp_path / "xdg" / "mmalign" / "converted").glob("*.safetensors"))) == 1
    assert not (folder / "res101.mat.mmalign.safetensors").exists()


def test_cached_res101_unwritable_cache_warns_and_loads(folder, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, so the cache folder cannot be created")
    with pytest.warns(UserWarning, match="could not write feature cache"):
        data = read_xlsa17(folder, cache_dir=blocker / "sub")
    assert data.num_samples == 200
