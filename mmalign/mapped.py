"""Per-sample features larger than memory: rows read from safetensors files on demand.

`map_features` opens one ``(N, d)`` tensor of a safetensors file (the ``features`` of the
``res101.mat`` cache written by `mmalign.datasets.cache`, or any file a user wrote), or the
same key in several files (shards, stacked along rows), without loading it. Put the result in
``AlignmentData.sample_features``; training then fits the normaliser in one streaming pass
(`MappedFeatures.chunks`) and gathers only each batch's rows (`MappedFeatures.rows`).

Rows are read with ``os.preadv`` into a fresh buffer rather than through a memory map: a mapped
page stays in the process's resident set once touched, so after one epoch of random batches a
mapped file would be resident whole; read pages live in the kernel's page cache instead, which the
kernel reclaims and which does not count against the process.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import DataError

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


@dataclass(frozen=True)
class _Shard:
    path: Path
    offset: int  # byte offset of row 0 in the file
    rows: int


def _counts(value: object, length: int) -> bool:
    """Whether ``value`` is a JSON list of ``length`` non-negative integers (not booleans)."""
    return isinstance(value, list) and len(value) == length and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def _shard(path: Path, key: str, dim: int | None, dtype: np.dtype | None) -> tuple[_Shard, int, np.dtype]:
    """The header of one safetensors file: where ``key``'s rows start, how many, their width and type."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ValueError(f"header of {size} bytes")
            header = json.loads(fh.read(size))
    except FileNotFoundError:
        raise DataError(f"{path}: no such feature file") from None
    except (OSError, ValueError, struct.error) as exc:
        raise DataError(f"{path}: not a safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise DataError(f"{path}: not a safetensors file (its header is a JSON {type(header).__name__}, expected "
                        "an object of tensor entries)")
    if key not in header or key == "__metadata__":
        found = sorted(k for k in header if k != "__metadata__")
        raise DataError(f"{path}: no tensor {key!r}; the file holds {found}")
    entry = header[key]
    if not isinstance(entry, dict):
        raise DataError(f"{path}: header entry {key!r} is a JSON {type(entry).__name__}, expected an object with "
                        "'dtype', 'shape' and 'data_offsets'")
    shape, kind = entry.get("shape"), entry.get("dtype")
    if kind not in _DTYPES or not _counts(shape, 2):
        raise DataError(f"{path}: tensor {key!r} must be a 2-D float matrix (rows x dim), got {kind} {shape}")
    found_dtype = np.dtype(_DTYPES[kind])
    if (dim is not None and shape[1] != dim) or (dtype is not None and found_dtype != dtype):
        raise DataError(f"{path}: tensor {key!r} is {kind} {shape}, expected {dtype} rows of dimension {dim} "
                        "like the first shard")
    offsets = entry.get("data_offsets")
    if not _counts(offsets, 2) or offsets[1] < offsets[0]:
        raise DataError(f"{path}: tensor {key!r}: 'data_offsets' must be [begin, end], two non-negative integers "
                        f"with begin <= end, got {offsets!r}")
    begin, end = offsets
    if end - begin != shape[0] * shape[1] * found_dtype.itemsize or 8 + size + end > path.stat().st_size:
        raise DataError(f"{path}: tensor {key!r} is truncated or its offsets are inconsistent")
    return _Shard(path, 8 + size + begin, int(shape[0])), int(shape[1]), found_dtype


class MappedFeatures:
    """An ``(N, d)`` float matrix left on disk (see the module docstring); rows come back float32.

    Indexing with an integer array (``feats[idx]``) reads those rows; ``np.asarray(feats)`` reads
    everything (what evaluation on a whole split of a small data set does)."""

    def __init__(self, paths: Sequence[str | os.PathLike], key: str = "features") -> None:
        if not paths:
            raise DataError("map_features needs at least one safetensors file")
        shards, dim, dtype = [], None, None
        for p in paths:
            shard, dim, dtype = _shard(Path(p), key, dim, dtype)
            shards.append(shard)
        self.key, self.shards, self.dim, self.file_dtype = key, shards, int(dim), dtype
        self.starts = np.cumsum([0] + [s.rows for s in shards])
        self.dtype = np.dtype(np.float32)
        self._fds: dict[Path, int] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.starts[-1]), self.dim

    ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"MappedFeatures({[str(s.path) for s in self.shards]}, key={self.key!r}, shape={self.shape})"

    def _fd(self, path: Path) -> int:
        if path not in self._fds:
            self._fds[path] = os.open(path, os.O_RDONLY)
        return self._fds[path]

    def __getstate__(self) -> dict:  # file descriptors do not travel to another process
        return {**self.__dict__, "_fds": {}}

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            os.close(fd)

    def _read(self, shard: _Shard, first: int, count: int, out: np.ndarray) -> None:
        """Rows ``first .. first + count`` of one shard into ``out`` (file dtype)."""
        width = self.dim * self.file_dtype.itemsize
        got = os.preadv(self._fd(shard.path), [memoryview(out).cast("B")], shard.offset + first * width)
        if got != count * width:
            raise DataError(f"{shard.path}: short read at row {first} (file changed while training?)")

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (any integer shape ``(...,)``) as float32 ``(..., d)``, read in sorted runs."""
        idx = np.asarray(idx, dtype=np.int64)
        flat = idx.reshape(-1)
        n = self.shape[0]
        if flat.size and (flat.min() < -n or flat.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        flat = np.where(flat < 0, flat + n, flat)
        order = np.argsort(flat, kind="stable")
        wanted = flat[order]
        shard = np.searchsorted(self.starts, wanted, side="right") - 1
        # a run: consecutive rows of one shard, read with one call
        breaks = np.flatnonzero((np.diff(wanted) != 1) | (np.diff(shard) != 0)) + 1
        out = np.empty((flat.size, self.dim), dtype=self.file_dtype)
        first, shards, dest = (wanted - self.starts[shard]).tolist(), shard.tolist(), order.tolist()
        for i, j in zip([0, *breaks.tolist()], [*breaks.tolist(), wanted.size]):
            if j - i == 1:
                self._read(self.shards[shards[i]], first[i], 1, out[dest[i]])
                continue
            buf = np.empty((j - i, self.dim), dtype=self.file_dtype)
            self._read(self.shards[shards[i]], first[i], j - i, buf)
            out[order[i:j]] = buf
        return out.astype(np.float32, copy=False).reshape(*idx.shape, self.dim)

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            idx = np.arange(*idx.indices(self.shape[0]))
        return self.rows(np.asarray(idx))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.concatenate(list(self.chunks())) if self.shape[0] else np.empty((0, self.dim), np.float32)
        return out if dtype is None else out.astype(dtype)

    @property
    def chunk_rows(self) -> int:
        """Rows per block of `chunks`: about 16 MiB of float32."""
        return max(1, (16 << 20) // (4 * self.dim))

    def chunks(self, idx: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Rows ``idx`` (default: all, in order) in blocks of `chunk_rows`, float32."""
        idx = np.arange(self.shape[0]) if idx is None else np.asarray(idx, dtype=np.int64)
        rows = self.chunk_rows
        for start in range(0, idx.size, rows):
            block = idx[start:start + rows]
            lo, hi = (int(block.min()), int(block.max()) + 1) if block.size else (0, 0)
            if block.size and hi - lo <= 2 * block.size:  # dense: one read of the span, then pick
                yield self.rows(np.arange(lo, hi))[block - lo]
            else:
                yield self.rows(block)


def map_features(paths: str | os.PathLike | Sequence[str | os.PathLike], key: str = "features") -> MappedFeatures:
    """Per-sample features of tensor ``key`` in one safetensors file or several shards (rows in
    file order), left on disk. Raises `DataError` naming the file for a missing key, a
    tensor that is not a 2-D float matrix, shards that disagree, or a truncated file."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return MappedFeatures(list(paths), key)
