"""mmalign.safe_unpickle: numpy pickles convert to safetensors; nothing that runs code is loaded."""

from __future__ import annotations

import collections
import os
import pickle
import subprocess

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from mmalign.errors import DataError, MmalignError
from mmalign.safe_unpickle import ALLOWED, convert_pickle_to_safetensors, safe_load_pickle


class _Reduce:
    """Pickles as ``func(*args)``: what a malicious pickle does on load."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _write(tmp_path, obj, name="evil.p", protocol=pickle.DEFAULT_PROTOCOL):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _refused(tmp_path, src, global_pattern):
    dst = tmp_path / "out.safetensors"
    with pytest.raises(DataError, match=rf"{src.name}: refused to load global '{global_pattern}'"):
        convert_pickle_to_safetensors(src, dst)
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_unpickle_refuses_os_system_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "MARKER"
    src = _write(tmp_path, {"x": np.zeros(3), "y": [_Reduce(os.system, (f"touch {marker}",))]}, protocol=protocol)
    _refused(tmp_path, src, r"(os|posix|nt)\.system")
    assert not marker.exists()


def test_unpickle_names_os_system_as_written(tmp_path):
    marker = tmp_path / "MARKER"
    src = tmp_path / "raw.p"
    src.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    _refused(tmp_path, src, r"os\.system")
    assert not marker.exists()


def test_unpickle_refuses_eval(tmp_path):
    marker = tmp_path / "MARKER"
    src = _write(tmp_path, _Reduce(eval, (f"open({str(marker)!r}, 'w').close()",)))
    _refused(tmp_path, src, r"builtins\.eval")
    assert not marker.exists()


def test_unpickle_refuses_subprocess_popen(tmp_path):
    marker = tmp_path / "MARKER"
    src = _write(tmp_path, {"features": _Reduce(subprocess.Popen, (["touch", str(marker)],))})
    _refused(tmp_path, src, r"subprocess\.Popen")
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"), ("builtins", "open"),
    ("__builtin__", "eval"), ("copyreg", "_reconstructor"), ("numpy", "load"), ("numpy", "memmap"),
    ("numpy.core.multiarray", "frombuffer_evil"), ("torch", "load"), ("shutil", "rmtree"), ("os", "remove"),
])
def test_unpickle_refuses_every_global_outside_the_table(tmp_path, module, name):
    src = tmp_path / "raw.p"
    src.write_bytes(b"c" + module.encode() + b"\n" + name.encode() + b"\n(S'x'\ntR.")
    shown = "builtins" if module == "__builtin__" else module  # Python 2 names are mapped first
    _refused(tmp_path, src, rf"{shown}\.{name}")


def test_unpickle_refuses_array_subclasses(tmp_path):
    src = _write(tmp_path, {"m": np.asmatrix(np.eye(2))})
    _refused(tmp_path, src, r"numpy\.(matrixlib\.defmatrix\.)?matrix")


def test_unpickle_table_is_numpy_and_plain_containers_only():
    modules = {module for module, _ in ALLOWED}
    assert modules <= {"builtins", "collections", "_codecs", "numpy", "numpy.core.multiarray",
                       "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric"}
    assert {name for module, name in ALLOWED if module == "builtins"} == {
        "dict", "list", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool"}


def _example():
    rng = np.random.default_rng(0)
    return {
        "sentences": rng.random((5, 7)).astype(np.float32),
        "att": rng.random((5, 3)),
        "labels": np.arange(10, dtype=np.int64),
        "nested": {"small": np.array([1, 2, 3], dtype=np.int32), "list": [np.ones(2, np.float32), np.zeros((1, 2))],
                   "flags": np.array([True, False])},
        "ordered": collections.OrderedDict(b=np.float64(2.5), a=np.float32(1.5)),
        "count": 7,
        "numbers": [1, 2.5, 3],
        "name": "CUB",
        "classes": np.array(["001.Albatross", "002.Auklet"]),
        "nothing": None,
    }


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_unpickle_converts_nested_arrays_and_loads_back_equal(tmp_path, protocol):
    obj = _example()
    src = _write(tmp_path, obj, "CUB_supporting_data.p", protocol)
    dst = tmp_path / "converted" / "cub.safetensors"
    keys = convert_pickle_to_safetensors(src, dst)
    back = load_file(str(dst))
    assert keys == sorted(back)
    expected = {
        "sentences": obj["sentences"], "att": obj["att"], "labels": obj["labels"],
        "nested.small": obj["nested"]["small"], "nested.list.0": obj["nested"]["list"][0],
        "nested.list.1": obj["nested"]["list"][1], "nested.flags": obj["nested"]["flags"],
        "ordered.b": np.asarray(np.float64(2.5)), "ordered.a": np.asarray(np.float32(1.5)),
        "count": np.asarray(7), "numbers": np.asarray([1, 2.5, 3]),
    }
    assert sorted(back) == sorted(expected)
    for key, value in expected.items():
        assert back[key].dtype == value.dtype, key
        assert back[key].shape == value.shape, key
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    with safe_open(str(dst), framework="np") as fh:
        meta = fh.metadata()
    import json

    assert json.loads(meta["strings"]) == {"name": "CUB", "classes": ["001.Albatross", "002.Auklet"]}
    assert [p.name for p in dst.parent.iterdir()] == ["cub.safetensors"]


def test_unpickle_reads_python2_style_numpy_pickle(tmp_path):
    # What Python 2 + numpy wrote: protocol 0/2 globals, the array bytes as a py2 str (latin-1).
    data = np.array([1.0, 2.0], dtype="<f4").tobytes().decode("latin1")
    blob = (
        b"(dp0\nS'sentences'\np1\ncnumpy.core.multiarray\n_reconstruct\np2\n(cnumpy\nndarray\np3\n(I0\ntp4\nS'b'\n"
        b"p5\ntp6\nRp7\n(I1\n(I2\ntp8\ncnumpy\ndtype\np9\n(S'f4'\np10\nI0\nI1\ntp11\nRp12\n(I3\nS'<'\np13\nNNNI-1\n"
        b"I-1\nI0\ntp14\nbI00\nS" + repr(data).encode("latin1") + b"\np15\ntp16\nbs."
    )
    src = tmp_path / "py2.p"
    src.write_bytes(blob)
    assert convert_pickle_to_safetensors(src, tmp_path / "py2.safetensors") == ["sentences"]
    np.testing.assert_array_equal(load_file(str(tmp_path / "py2.safetensors"))["sentences"], [1.0, 2.0])


@pytest.mark.parametrize("blob", [
    b"", b"\x00\x01garbage\xff" * 10, b"not a pickle at all\n", b"\x80\x04\x95", b"(dp0\nS'x'\n",
    b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s", b"Ppersistent\n.",
])
def test_unpickle_garbage_or_truncated_is_a_data_error(tmp_path, blob):
    src = tmp_path / "bad.p"
    src.write_bytes(blob)
    dst = tmp_path / "out.safetensors"
    dst.write_bytes(b"previous")
    with pytest.raises(DataError, match=r"bad\.p: "):
        convert_pickle_to_safetensors(src, dst)
    assert dst.read_bytes() == b"previous"


def test_unpickle_truncated_real_pickle_is_a_data_error(tmp_path):
    full = pickle.dumps(_example(), protocol=4)
    for cut in (1, len(full) // 3, len(full) // 2, len(full) - 1):
        src = tmp_path / "cut.p"
        src.write_bytes(full[:cut])
        with pytest.raises(DataError, match="cut.p"):
            convert_pickle_to_safetensors(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("obj, message", [
    (5, "top level"),
    ({"a.b": np.zeros(1), "a": {"b": np.ones(1)}}, "same key 'a.b'"),
    ({"obj": np.array([{"x": 1}], dtype=object)}, "'obj' is a object array"),
    ({"c": np.array([1 + 2j])}, "'c' is a complex128 array"),
    ({"s": {1, 2}}, "'s' holds a set"),
    ({(1, 2): np.zeros(1)}, "not a string or integer"),
    ({"none": None}, "no numeric arrays"),
])
def test_unpickle_content_that_is_not_arrays_is_a_data_error(tmp_path, obj, message):
    src = _write(tmp_path, obj, "odd.p")
    with pytest.raises(DataError, match=message):
        convert_pickle_to_safetensors(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_unpickle_refuses_allocation_from_a_tiny_file(tmp_path):
    src = tmp_path / "bomb.p"
    src.write_bytes(b"(dp0\nS'x'\nc__builtin__\nbytes\n(I4000000000\ntRs.")
    with pytest.raises(DataError, match=r"bytes\(<int>\)"):
        safe_load_pickle(src)
    src.write_bytes(b"(dp0\nS'x'\ncnumpy\nndarray\n((I50000000\ntS'f8'\ntRs.")
    with pytest.raises(DataError, match="claims 400000000 bytes, more than the file holds"):
        convert_pickle_to_safetensors(src, tmp_path / "out.safetensors")


def test_unpickle_deep_nesting_is_a_data_error(tmp_path):
    obj = np.zeros(1)
    for _ in range(200):
        obj = [obj]
    src = _write(tmp_path, {"deep": obj}, "deep.p")
    with pytest.raises(DataError, match="nested deeper"):
        convert_pickle_to_safetensors(src, tmp_path / "out.safetensors")


def test_unpickle_failed_write_leaves_previous_destination(tmp_path, monkeypatch):
    src = _write(tmp_path, _example(), "good.p")
    dst = tmp_path / "cub.safetensors"
    dst.write_bytes(b"previous complete file")

    def half_then_fail(arrays, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.numpy.save_file", half_then_fail)
    with pytest.raises(MmalignError, match="cub.safetensors: cannot be written"):
        convert_pickle_to_safetensors(src, dst)
    assert dst.read_bytes() == b"previous complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cub.safetensors", "good.p"]


def test_unpickle_big_endian_arrays_are_stored_native(tmp_path):
    src = _write(tmp_path, {"be": np.arange(4, dtype=">f4")}, "be.p")
    convert_pickle_to_safetensors(src, tmp_path / "be.safetensors")
    back = load_file(str(tmp_path / "be.safetensors"))["be"]
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, [0, 1, 2, 3])


def test_cli_data_convert_pickle(tmp_path, capsys):
    from mmalign.cli import main

    good = _write(tmp_path, _example(), "CUB_supporting_data.p")
    capsys.readouterr()
    assert main(["data", "convert-pickle", str(good), str(tmp_path / "cub.safetensors")]) == 0
    assert capsys.readouterr().out.startswith("wrote ")
    assert sorted(load_file(str(tmp_path / "cub.safetensors"))) == convert_pickle_to_safetensors(good, tmp_path / "x.safetensors")
    marker = tmp_path / "MARKER"
    evil = _write(tmp_path, {"x": _Reduce(os.system, (f"touch {marker}",))})
    capsys.readouterr()
    assert main(["data", "convert-pickle", str(evil), str(tmp_path / "evil.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused to load global" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "evil.safetensors").exists()
