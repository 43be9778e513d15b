"""Safe .mat reading: every malformed file becomes a DataError naming the file and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign.datasets.matfile import (
    HDF5_SIGNATURE,
    cell_strings,
    check_mat_header,
    mat_shapes,
    read_mat,
    strings_cell,
    write_mat,
)
from mmalign.errors import DataError


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.mat"
    write_mat(path, {"att": np.arange(12.0).reshape(3, 4), "trainval_loc": np.arange(1, 200, dtype=np.uint16).reshape(-1, 1),
                     "allclasses_names": strings_cell(["a", "b", "c", "d"])})
    return path


def test_read_mat_roundtrip(good):
    out = read_mat(good, ["att", "trainval_loc"], ["allclasses_names", "absent"])
    assert out["att"].shape == (3, 4) and out["trainval_loc"].shape == (199, 1)
    assert "absent" not in out
    assert cell_strings(out["allclasses_names"], good, "allclasses_names") == ["a", "b", "c", "d"]
    assert mat_shapes(good) == {"att": (3, 4), "trainval_loc": (199, 1), "allclasses_names": (4, 1)}


def test_read_mat_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.mat: file not found"):
        read_mat(tmp_path / "nope.mat", ["att"])


def test_read_mat_directory(tmp_path):
    with pytest.raises(DataError, match="not a regular file"):
        read_mat(tmp_path, ["att"])


def test_read_mat_empty_file(tmp_path):
    path = tmp_path / "empty.mat"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.mat: file is empty \(0 bytes\)"):
        read_mat(path, ["att"])


def test_read_mat_not_matlab(tmp_path):
    path = tmp_path / "text.mat"
    path.write_text("this is a CSV file,1,2,3\n" * 20)
    with pytest.raises(DataError, match=r"text\.mat: is not a MATLAB \.mat file"):
        read_mat(path, ["att"])


def test_read_mat_hdf5_signature(tmp_path):
    path = tmp_path / "h5.mat"
    path.write_bytes(HDF5_SIGNATURE + bytes(600))
    with pytest.raises(DataError, match=r"h5\.mat: is a MATLAB v7\.3 \(HDF5\) file.*-v7"):
        read_mat(path, ["att"])


def test_read_mat_v73_header(tmp_path):
    path = tmp_path / "v73.mat"
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 .".ljust(128)
    path.write_bytes(header + bytes(384) + HDF5_SIGNATURE + bytes(64))
    with pytest.raises(DataError, match=r"v7\.3 \(HDF5\).*save"):
        mat_shapes(path)


@pytest.mark.parametrize("keep", [60, 300, 0.5, -8])
def test_read_mat_truncated(good, tmp_path, keep):
    data = good.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.mat"
    path.write_bytes(data[:cut])
    with pytest.raises(DataError, match=r"cut\.mat: .*(truncated|missing key)"):
        read_mat(path, ["att", "trainval_loc", "allclasses_names"])


def test_read_mat_missing_key_names_file_key_and_found(good):
    with pytest.raises(DataError) as err:
        read_mat(good, ["att", "test_unseen_loc"], expected={"test_unseen_loc": "1-based index vector"})
    msg = str(err.value)
    assert "good.mat" in msg and "test_unseen_loc (1-based index vector)" in msg and "'trainval_loc'" in msg


def test_check_mat_header_accepts_real_file(good):
    assert check_mat_header(good) == good
