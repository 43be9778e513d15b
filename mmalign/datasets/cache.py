"""Fast-loading cache: ``res101.mat`` converted once to safetensors.

The cache file records the source's size, mtime and sha256 plus every tensor's shape in its
safetensors metadata. On load, names and shapes are verified and the source key compared: a
changed size (or a changed mtime with a different sha256) makes the cache stale and it is
rebuilt. A cache that cannot be written (read-only folder) is skipped with a warning. Location:
``cache_dir`` if given, else ``res101.mat.mmalign.safetensors`` beside the source when that folder
is writable, else ``$XDG_CACHE_HOME/mmalign/converted/``. No pickle is involved.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from .locate import cache_root
from .matfile import check_mat_header, sha256_file
from .res101 import Res101, read_res101

FORMAT = "mmalign-res101-v1"
_NAMES = ("features", "labels")


def cache_path(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted copy of ``source`` is kept (see module docstring)."""
    source = Path(source).resolve()
    key = hashlib.sha256(str(source).encode()).hexdigest()[:16]
    if cache_dir is not None:
        return Path(cache_dir) / f"{key}-{source.name}.safetensors"
    if os.access(source.parent, os.W_OK):
        return source.with_name(source.name + ".mmalign.safetensors")
    return cache_root() / "converted" / f"{key}-{source.name}.safetensors"


def cached_res101(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Res101:
    """`read_res101` through the cache: convert on first use, reuse while the source is unchanged."""
    path = check_mat_header(path)
    target = cache_path(path, cache_dir)
    hit = _load(target, path)
    if hit is not None:
        return hit
    res = read_res101(path)
    stat = path.stat()
    _save(target, res, stat.st_size, stat.st_mtime_ns)
    return res


def _load(target: Path, source: Path) -> Res101 | None:
    """The cached arrays, or None when missing, stale, unreadable or inconsistent."""
    if not target.is_file():
        return None
    stat = source.stat()
    try:
        with safe_open(str(target), framework="np") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != FORMAT or int(meta["source_size"]) != stat.st_size:
                return None
            if set(fh.keys()) != set(_NAMES):
                return None
            sha = meta["source_sha256"]
            fresh_mtime = int(meta["source_mtime_ns"]) == stat.st_mtime_ns
            if not fresh_mtime and sha256_file(source) != sha:
                return None
            arrays = {k: fh.get_tensor(k) for k in _NAMES}
        shapes = json.loads(meta["shapes"])
    except Exception:  # corrupt or foreign file: rebuild
        return None
    feats, labels = arrays["features"], arrays["labels"]
    if (
        any(list(arrays[k].shape) != shapes.get(k) for k in _NAMES)
        or feats.ndim != 2 or feats.dtype != np.float32
        or labels.shape != (feats.shape[0],) or labels.dtype != np.int64
    ):
        return None
    res = Res101(feats, labels, source, sha)
    if not fresh_mtime:  # same content, touched file: record the new mtime to skip rehashing
        _save(target, res, stat.st_size, stat.st_mtime_ns)
    return res


def _save(target: Path, res: Res101, size: int, mtime_ns: int) -> None:
    arrays = {"features": np.ascontiguousarray(res.features), "labels": np.ascontiguousarray(res.labels)}
    meta = {
        "format": FORMAT,
        "source_name": res.path.name,
        "source_size": str(size),
        "source_mtime_ns": str(mtime_ns),
        "source_sha256": res.sha256,
        "shapes": json.dumps({k: list(v.shape) for k, v in arrays.items()}),
    }
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
        os.close(fd)
        save_file(arrays, tmp, metadata=meta)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(f"could not write feature cache {target} ({exc}); reading {res.path} directly", stacklevel=3)
