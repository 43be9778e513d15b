"""Safe reading and writing of MATLAB ``.mat`` files (v5/v7, the xlsa17 format).

Every failure becomes a `DataError` that names the file, the key and what
was expected: a missing, empty, truncated or non-MATLAB file, a MATLAB v7.3 (HDF5) file that
scipy cannot read, or a missing key. No scipy exception escapes from here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import scipy.io

from ..errors import DataError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HEADER_BYTES = 128  # v5 header: 116 bytes text, 8 subsystem offset, 2 version, 2 endian mark
_V73_HINT = (
    "scipy reads MATLAB v5/v7 files only; convert it in MATLAB with "
    "`s = load('{name}'); save('{name}', '-struct', 's', '-v7')` (or re-save with scipy.io.savemat)"
)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_mat_header(path: str | os.PathLike) -> Path:
    """Raise `DataError` unless ``path`` looks like a readable MATLAB v5/v7 file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found (expected a MATLAB .mat file)")
    if not path.is_file():
        raise DataError(f"{path}: is not a regular file (expected a MATLAB .mat file)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
            fh.seek(512)
            at512 = fh.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise DataError(f"{path}: file is empty (0 bytes); expected a MATLAB v5/v7 .mat file - download it again")
    if head.startswith(HDF5_SIGNATURE) or at512 == HDF5_SIGNATURE or b"MATLAB 7.3" in head:
        raise DataError(
            f"{path}: is a MATLAB v7.3 (HDF5) file; " + _V73_HINT.format(name=path.name)
        )
    if not head.startswith(b"MATLAB"):
        raise DataError(
            f"{path}: is not a MATLAB .mat file (header starts with {head[:16]!r}, "
            "expected 'MATLAB 5.0 MAT-file')"
        )
    if len(head) < _HEADER_BYTES:
        raise DataError(f"{path}: is truncated ({len(head)} bytes, shorter than a MATLAB header) - download it again")
    return path


def mat_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Variable name -> shape, read from the file's headers without loading the data."""
    path = check_mat_header(path)
    try:
        return {name: tuple(int(s) for s in shape) for name, shape, _ in scipy.io.whosmat(str(path))}
    except Exception as exc:  # scipy raises many types on corrupt input
        raise _unreadable(path, exc) from None


def read_mat(
    path: str | os.PathLike,
    required: Iterable[str],
    optional: Iterable[str] = (),
    expected: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Load ``required`` (must exist) and ``optional`` keys of a ``.mat`` file.

    Args:
        path: the file.
        required: keys that must be present; a missing one raises `DataError`.
        optional: keys loaded when present.
        expected: key -> description used in error messages (e.g. ``"D x N float matrix"``).

    Returns:
        key -> array as stored (no squeezing, no transposition, strings left as cell arrays).
    """
    path = check_mat_header(path)
    required, optional = list(required), list(optional)
    survives_reading(path, required + optional)
    try:
        loaded = scipy.io.loadmat(str(path), variable_names=required + optional, squeeze_me=False)
    except Exception as exc:
        raise _unreadable(path, exc) from None
    check_complete(path)
    missing = [k for k in required if k not in loaded]
    if missing:
        try:
            found = sorted(mat_shapes(path))
        except DataError:
            found = sorted(k for k in loaded if not k.startswith("__"))
        want = ", ".join(f"{k} ({(expected or {}).get(k, 'array')})" for k in missing)
        raise DataError(
            f"{path}: missing key(s) {want}; keys found in the file: {found} "
            f"(if the file should hold them it may be truncated: it has {path.stat().st_size} bytes)"
        )
    return {k: loaded[k] for k in required + optional if k in loaded}


def survives_reading(path: Path, keys: list[str]) -> None:
    """Read ``path`` once in a forked child first: scipy's MAT reader is C code, and some damaged
    files (sizes that point past the data) crash it with a segmentation fault instead of an
    exception, which would take the whole command down with no message. A child that dies on a
    signal becomes a `DataError` naming the file. Where ``fork`` is missing (Windows) the file is
    read directly."""
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:  # the child: read, and leave without running any of the parent's exit handlers
        import faulthandler

        faulthandler.disable()  # its crash is reported by the parent, in one line
        code = 0
        try:
            scipy.io.loadmat(str(path), variable_names=keys, squeeze_me=False)
        except BaseException:  # the parent reads again and reports the exception itself
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise DataError(f"{path}: not a readable MAT file: the reader crashed on it (signal {os.WTERMSIG(status)}); "
                        "the file is damaged: download it again")


def check_complete(path: Path) -> None:
    """Raise `DataError` if a variable of the file ends beyond the end of the file."""
    try:  # scipy's v5 reader is private API: without it, skip this extra check
        from scipy.io.matlab._mio5 import MatFile5Reader
    except ImportError:
        return
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            reader = MatFile5Reader(fh)
            reader.initialize_read()
            reader.read_file_header()
            while not reader.end_of_stream():
                header, end = reader.read_var_header()
                if end > size:
                    name = header.name.decode("latin1") if header.name else "?"
                    raise DataError(
                        f"{path}: is truncated: variable {name!r} needs {end} bytes but the file has {size} "
                        "- download it again"
                    )
                fh.seek(end)
    except DataError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from None


def cell_strings(arr: np.ndarray, path: str | os.PathLike, key: str) -> list[str]:
    """Strings of a MATLAB cell array (``n x 1`` of char) or char matrix, in order."""
    try:
        if arr.dtype.kind == "U":
            return [str(s).strip() for s in arr.ravel()]
        out = []
        for item in np.asarray(arr, dtype=object).ravel():
            item = np.asarray(item)
            out.append(str(item.ravel()[0]).strip() if item.size else "")
        return out
    except Exception:
        raise DataError(f"{path}: key {key!r} should be a cell array of strings, got {arr.dtype} {arr.shape}") from None


def write_mat(path: str | os.PathLike, arrays: Mapping[str, object]) -> Path:
    """Write ``arrays`` as a MATLAB v5 file atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            scipy.io.savemat(fh, dict(arrays), format="5", oned_as="column")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def strings_cell(strings: Iterable[str]) -> np.ndarray:
    """A ``n x 1`` object array that `scipy.io.savemat` writes as a cell array of strings."""
    strings = list(strings)
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = np.array([s])
    return cell


def _unreadable(path: Path, exc: Exception) -> DataError:
    size = path.stat().st_size if path.exists() else 0
    return DataError(
        f"{path}: could not be read as a MATLAB v5/v7 file ({size} bytes; "
        f"{type(exc).__name__}: {exc}); it is probably truncated or corrupt - download it again"
    )


def numeric_array(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise DataError(f"{path}: key {key!r} should be a real numeric array, got {getattr(arr, 'dtype', type(arr))}")
    return arr


def index_vector(arr: np.ndarray, path: Path, key: str, one_based: bool = False) -> np.ndarray:
    """An ``n x 1`` (or ``1 x n``) integer-valued array as a 1-D int64 vector."""
    arr = numeric_array(arr, path, key)
    if arr.ndim > 2 or (arr.ndim == 2 and min(arr.shape) != 1) or arr.size == 0:
        raise DataError(f"{path}: key {key!r} should be a non-empty n x 1 vector, got shape {arr.shape}")
    vec = arr.ravel()
    if vec.dtype.kind == "f":
        if not np.isfinite(vec).all() or not np.array_equal(vec, np.round(vec)):
            raise DataError(f"{path}: key {key!r} should hold whole numbers, found NaN/Inf or fractions")
    vec = vec.astype(np.int64)
    if one_based and vec.min() < 1:
        hint = "looks 0-based (smallest index 0)" if vec.min() == 0 else f"holds negative index {vec.min()}"
        raise DataError(f"{path}: key {key!r} {hint}; xlsa17 indices are 1-based (1..N): add 1 before saving")
    return vec


def class_matrix(arr: np.ndarray, path: Path, key: str, num_classes: int | None, exact: bool) -> np.ndarray:
    """``dim x C`` as stored -> ``(C, dim)`` float32, refusing a ``C x dim`` (transposed) matrix."""
    arr = numeric_array(arr, path, key)
    if arr.ndim != 2:
        raise DataError(f"{path}: key {key!r} should be a dim x C matrix, got shape {arr.shape}")
    rows, cols = arr.shape
    if num_classes is not None and cols != num_classes:
        if rows == num_classes:
            raise DataError(
                f"{path}: key {key!r} is stored classes x dim ({rows} x {cols}) but xlsa17 stores dim x "
                f"classes (one column per class, {num_classes} classes): the matrix is transposed - save {key}.T"
            )
        if exact:
            raise DataError(f"{path}: key {key!r} has shape {arr.shape}, expected (dim, {num_classes}) - one column per class")
    mat = np.ascontiguousarray(arr.T, dtype=np.float32)
    check_finite_matrix(mat, path, key, ("class", "dimension"))
    return mat


def check_finite_matrix(mat: np.ndarray, path: Path, key: str, axes: tuple[str, str]) -> None:
    bad = ~np.isfinite(mat)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: key {key!r} holds {int(bad.sum())} NaN/Inf value(s) (first at {axes[0]} {r}, "
            f"{axes[1]} {c}, 0-based, after conversion to float32)"
        )
