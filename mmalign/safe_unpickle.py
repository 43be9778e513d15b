"""One-time conversion of a numpy pickle to safetensors, through a restricted unpickler.

The CADA-VAE authors distribute CUB's sentence features as a pickle (``CUB_supporting_data.p``, a
dict of ``(C, dim)`` numpy arrays). Unpickling runs whatever callables the file names, so this is
the only module of mmalign that touches `pickle`, and it resolves globals from a fixed table
instead of importing them:

* numpy arrays, dtypes and scalars (``numpy.core.multiarray._reconstruct``,
  ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``,
  ``numpy.core.multiarray.scalar`` and the ``numpy._core`` equivalents; ``_frombuffer`` of
  ``numpy(._)core.numeric``, which numpy uses for arrays pickled with protocol 5);
* plain containers and values: ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``,
  ``collections.OrderedDict``, ``str``, ``bytes``, ``int``, ``float``, ``bool`` (and
  ``_codecs.encode``, which protocol 2 uses to pickle ``bytes``).

Any other global raises `DataError` naming the file and the refused global
(for example ``refused to load global 'os.system'``) before anything is called. Truncated or
garbage pickles raise `DataError` as well.

`convert_pickle_to_safetensors` flattens nested dicts/lists of arrays into dotted keys
(``{"a": {"b": x}, "c": [y, z]}`` gives ``a.b``, ``c.0``, ``c.1``) and writes them atomically:
the destination is either the complete new file or untouched. Strings (and arrays of strings) are
kept in the file's metadata: ``metadata["strings"]`` is a JSON object of dotted key -> string or
list of strings; ``None`` values are dropped.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_atomic
from .errors import DataError, OutputError

__all__ = ["RestrictedUnpickler", "convert_pickle_to_safetensors", "safe_load_pickle"]

#: How deep nested containers may go before the file is refused.
MAX_DEPTH = 64
#: dtypes safetensors stores (kind, itemsize).
_STORABLE = {("b", 1), ("u", 1), ("u", 2), ("u", 4), ("u", 8), ("i", 1), ("i", 2), ("i", 4), ("i", 8),
             ("f", 2), ("f", 4), ("f", 8)}


def _numpy_attr(name: str, *modules: str) -> Any:
    """``name`` from the first of ``modules`` that has it (numpy 1 vs 2 layout), or None."""
    import importlib

    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain ``ndarray`` only (no subclasses, no memmaps)."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"_reconstruct of {subtype!r} (only numpy.ndarray is admitted)")
    return _NP_RECONSTRUCT(subtype, shape, dtype)


def _bytes(*args: Any) -> bytes:
    """``bytes`` without the ``bytes(n)`` form, which would allocate n zero bytes from a tiny file."""
    if args and isinstance(args[0], int):
        raise pickle.UnpicklingError("bytes(<int>) (allocating from a size) is not admitted")
    return bytes(*args)


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for ``bytes``: str -> bytes, latin-1 only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is admitted only as encode(str, 'latin1')")
    return text.encode("latin1")


_NP_RECONSTRUCT = _numpy_attr("_reconstruct", "numpy._core.multiarray", "numpy.core.multiarray")
_NP_SCALAR = _numpy_attr("scalar", "numpy._core.multiarray", "numpy.core.multiarray")
_NP_FROMBUFFER = _numpy_attr("_frombuffer", "numpy._core.numeric", "numpy.core.numeric")

#: (module, name) -> the object handed to the unpickler. Nothing outside this table is imported.
ALLOWED: dict[tuple[str, str], Any] = {
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "str"): str,
    ("builtins", "bytes"): _bytes,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "bool"): bool,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _core in ("numpy.core", "numpy._core"):
    ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    if _NP_SCALAR is not None:
        ALLOWED[(f"{_core}.multiarray", "scalar")] = _NP_SCALAR
    if _NP_FROMBUFFER is not None:
        ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _NP_FROMBUFFER


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside `ALLOWED`."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only `ALLOWED` (numpy arrays, plain values).

    Python 2 pickles are read with ``encoding="latin1"`` (numpy's convention) and their module
    names mapped to Python 3's (``__builtin__`` -> ``builtins``) before the check.
    """

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file, fix_imports=True, encoding="latin1")

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (overriding find_class skips pickle's own fix_imports mapping).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        obj = ALLOWED.get((module, name))
        if obj is None:
            raise RefusedGlobal(module, name)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not admitted")


def safe_load_pickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with `RestrictedUnpickler`; any problem is a `DataError`."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not blob:
        raise DataError(f"{path}: file is empty (0 bytes); expected a pickle of numpy arrays")
    try:
        return RestrictedUnpickler(io.BytesIO(blob)).load()
    except RefusedGlobal as exc:
        raise DataError(
            f"{path}: refused to load global {exc.qualified!r}; only numpy arrays and plain containers "
            "(dict, list, tuple, str, numbers) are admitted, so this file is not a plain array pickle"
        ) from None
    except RecursionError:
        raise DataError(f"{path}: the pickle is nested too deeply to be plain array data") from None
    except MemoryError:
        raise DataError(f"{path}: the pickle asks for more memory than is available") from None
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError, ... on corrupt input
        raise DataError(
            f"{path}: not a readable pickle of numpy arrays ({type(exc).__name__}: {exc}); "
            "it is probably truncated or corrupt - download it again"
        ) from None


def flatten(obj: Any, where: str | os.PathLike = "pickle", limit: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Nested dicts/lists/tuples of arrays -> (dotted key -> array, dotted key -> string(s)).

    Numbers and numpy scalars become 0-d arrays, non-empty lists of plain numbers one array;
    strings and string arrays go to the second dict; ``None`` is dropped. ``limit`` bounds the bytes
    of any array that came out of the file as an array (it cannot hold more data than the file).
    """
    arrays: dict[str, np.ndarray] = {}
    strings: dict[str, Any] = {}
    stack: list[tuple[str, Any, int]] = [("", obj, 0)]
    while stack:
        key, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DataError(f"{where}: containers nested deeper than {MAX_DEPTH} levels at {key!r}")
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                if isinstance(k, bytes):
                    k = k.decode("latin1")
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise DataError(f"{where}: key {k!r} under {key or '(top level)'!r} is not a string or integer")
                items.append((f"{key}.{k}" if key else str(k), v))
            stack.extend((k, v, depth + 1) for k, v in reversed(items))
            continue
        from_file = isinstance(value, np.ndarray)
        if isinstance(value, (list, tuple)) and value and all(_plain_number(v) for v in value):
            value = np.asarray(value)
        if isinstance(value, (list, tuple)):
            stack.extend((f"{key}.{i}" if key else str(i), v, depth + 1) for i, v in reversed(list(enumerate(value))))
            continue
        if not key:
            raise DataError(f"{where}: expected a dict or list of arrays at the top level, got {type(value).__name__}")
        if key in arrays or key in strings:
            raise DataError(f"{where}: two entries flatten to the same key {key!r}")
        if value is None:
            continue
        if isinstance(value, (str, bytes)):
            strings[key] = value.decode("latin1") if isinstance(value, bytes) else str(value)
            continue
        if isinstance(value, (set, frozenset)):
            raise DataError(f"{where}: key {key!r} holds a set, which has no order to store; expected an array")
        if _plain_number(value):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            raise DataError(f"{where}: key {key!r} holds a {type(value).__name__}; expected a numpy array or number")
        if value.dtype.kind in "US":
            strings[key] = (np.char.decode(value, "latin1") if value.dtype.kind == "S" else value).tolist()
            continue
        if (value.dtype.kind, value.dtype.itemsize) not in _STORABLE:
            raise DataError(
                f"{where}: key {key!r} is a {value.dtype} array; safetensors stores bool, integer and float arrays only"
            )
        if from_file and limit is not None and value.nbytes > limit:
            raise DataError(f"{where}: key {key!r} claims {value.nbytes} bytes, more than the file holds ({limit})")
        arrays[key] = value.astype(value.dtype.newbyteorder("="), order="C", copy=False)  # keeps 0-d arrays 0-d
    return arrays, strings


def _plain_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number, np.bool_))


def convert_pickle_to_safetensors(src: str | os.PathLike, dst: str | os.PathLike) -> list[str]:
    """Convert the numpy pickle ``src`` to the safetensors file ``dst``; returns the tensor keys.

    ``src`` is read with `RestrictedUnpickler` (see the module docstring); nested dicts and
    lists become dotted keys. ``dst`` is written atomically (temp file in the same folder, then a
    rename), so it is never left partial: on any error it is unchanged. Raises
    `DataError` for refused globals, corrupt pickles and content that is
    not arrays.
    """
    from safetensors.numpy import save_file

    src, dst = Path(src), Path(dst)
    obj = safe_load_pickle(src)
    arrays, strings = flatten(obj, src, limit=src.stat().st_size)
    if not arrays:
        raise DataError(f"{src}: holds no numeric arrays to convert")
    metadata = {"format": "mmalign-pickle-conversion-v1", "source_name": src.name}
    if strings:
        metadata["strings"] = json.dumps(strings, sort_keys=True)
    try:
        write_atomic(dst, lambda tmp: save_file(arrays, tmp, metadata=metadata))
    except OutputError:
        raise
    except OSError as exc:
        raise DataError(f"{dst}: cannot be written ({exc.strerror or exc})") from None
    return sorted(arrays)
