"""Data location and download: resume, checksum, unpack, offline failure (local server only)."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest

from mmalign.datasets import default_data_dir, download_xlsa17, find_dataset_dir, resolve_data_dir
from mmalign.datasets.locate import XLSA17_PAGE
from mmalign.errors import DataError
from loopback import LoopbackServer, zip_bytes


PAYLOAD = {
    "xlsa17/README.txt": b"readme",
    "xlsa17/code/demo.m": b"% matlab",
    "xlsa17/data/CUB/res101.mat": bytes(range(256)) * 800,
    "xlsa17/data/CUB/att_splits.mat": b"att" * 1000,
    "xlsa17/data/AWA2/att_splits.mat": b"awa2" * 500,
}


@pytest.fixture
def archive() -> bytes:
    return zip_bytes(PAYLOAD)


def _assert_unpacked(root: Path) -> None:
    assert (root / "CUB" / "res101.mat").read_bytes() == PAYLOAD["xlsa17/data/CUB/res101.mat"]
    assert (root / "AWA2" / "att_splits.mat").read_bytes() == PAYLOAD["xlsa17/data/AWA2/att_splits.mat"]
    assert not (root / "README.txt").exists() and not (root / "code").exists()


def test_download_xlsa17_fetches_and_unpacks(tmp_path, archive):
    with LoopbackServer(archive) as srv:
        out = download_xlsa17(tmp_path / "root", url=srv.url, progress=False)
    assert out == tmp_path / "root"
    _assert_unpacked(out)
    assert not (out / "xlsa17.zip").exists()
    assert srv.ranges == [None]


def test_download_xlsa17_resumes_partial_file(tmp_path, archive):
    root = tmp_path / "root"
    root.mkdir()
    half = len(archive) // 2
    (root / "xlsa17.zip.part").write_bytes(archive[:half])
    with LoopbackServer(archive) as srv:
        download_xlsa17(root, url=srv.url, progress=False, sha256=hashlib.sha256(archive).hexdigest(), keep_archive=True)
    assert srv.ranges == [f"bytes={half}-"]
    assert (root / "xlsa17.zip").read_bytes() == archive
    _assert_unpacked(root)


def test_download_xlsa17_interrupted_then_resumed(tmp_path, archive):
    root = tmp_path / "root"
    with LoopbackServer(archive, cut_at=5000) as srv, pytest.raises(DataError, match="run again to resume"):
        download_xlsa17(root, url=srv.url, progress=False)
    assert (root / "xlsa17.zip.part").stat().st_size == 5000
    with LoopbackServer(archive) as srv:
        download_xlsa17(root, url=srv.url, progress=False)
    assert srv.ranges == ["bytes=5000-"]
    _assert_unpacked(root)


def test_download_xlsa17_restarts_when_server_ignores_range(tmp_path, archive):
    root = tmp_path / "root"
    root.mkdir()
    (root / "xlsa17.zip.part").write_bytes(b"garbage" * 10)
    with LoopbackServer(archive, honour_range=False) as srv:
        download_xlsa17(root, url=srv.url, progress=False)
    assert srv.ranges == ["bytes=70-"]
    _assert_unpacked(root)


def test_download_xlsa17_complete_partial_file(tmp_path, archive):
    root = tmp_path / "root"
    root.mkdir()
    (root / "xlsa17.zip.part").write_bytes(archive)
    with LoopbackServer(archive) as srv:  # answers 416: nothing left to fetch
        download_xlsa17(root, url=srv.url, progress=False)
    _assert_unpacked(root)


def test_download_xlsa17_checksum_mismatch(tmp_path, archive):
    root = tmp_path / "root"
    with LoopbackServer(archive) as srv, pytest.raises(DataError, match=r"xlsa17\.zip: sha256 [0-9a-f]{64} does not match the expected 00"):
        download_xlsa17(root, url=srv.url, progress=False, sha256="00" * 32)
    assert not (root / "xlsa17.zip").exists() and not (root / "CUB").exists()


def test_download_xlsa17_not_a_zip(tmp_path):
    with LoopbackServer(b"<html>login page</html>") as srv, pytest.raises(DataError, match="not a valid zip archive"):
        download_xlsa17(tmp_path, url=srv.url, progress=False)


def test_download_xlsa17_http_error(tmp_path):
    with LoopbackServer(b"", status=404) as srv, pytest.raises(DataError, match=r"HTTP 404.*by hand"):
        download_xlsa17(tmp_path, url=srv.url, progress=False)


def test_download_xlsa17_offline_fails_fast(tmp_path):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        download_xlsa17(tmp_path / "root", url=f"http://127.0.0.1:{port}/xlsa17.zip", progress=False, timeout=2)
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert "cannot reach" in msg and XLSA17_PAGE in msg and str(tmp_path / "root" / "CUB" / "res101.mat") in msg


def test_download_xlsa17_refuses_path_traversal(tmp_path):
    evil = zip_bytes({"x/CUB/att_splits.mat": b"ok", "x/../../evil.txt": b"bad"})
    with LoopbackServer(evil) as srv, pytest.raises(DataError, match="would unpack outside"):
        download_xlsa17(tmp_path / "root", url=srv.url, progress=False)
    assert not (tmp_path / "evil.txt").exists()


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MMALIGN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "mmalign" / "xlsa17"
    assert resolve_data_dir() == default_data_dir()
    monkeypatch.setenv("MMALIGN_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "mmalign" / "xlsa17"


def test_find_dataset_dir_layouts_and_missing_message(tmp_path):
    nested = tmp_path / "xlsa17" / "data" / "CUB"
    nested.mkdir(parents=True)
    (nested / "att_splits.mat").write_bytes(b"x")
    assert find_dataset_dir("CUB", tmp_path, required=["att_splits.mat"]) == nested
    with pytest.raises(DataError) as err:
        find_dataset_dir("CUB", tmp_path)
    msg = str(err.value)
    assert f"missing file(s) res101.mat in {nested}" in msg and "data_dir argument" in msg
    with pytest.raises(DataError, match=r"FLO is not part of xlsa17.*cvpr18xian\.zip"):
        find_dataset_dir("FLO", tmp_path)
