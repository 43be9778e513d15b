"""On-disk cache of text embeddings in safetensors (no pickle, atomic writes, verified reads).

One file per encoded list of texts, named by `cache_key`: a SHA-256 over the model identity
(hash of its weights, config and tokenizer), the encoding settings (pooling, normalisation,
maximum length) and every text in order. A second run with the same inputs reads the file instead
of running the model; a changed model, setting or text gives another key and is encoded again.

Files hold one float32 tensor ``embeddings`` of shape ``(n, dim)`` and string metadata
(``format``, ``key``, ``rows``, ``dim``). They are checked before use; a file that fails the check
is ignored (and overwritten by the next write), never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import write_atomic

CACHE_FORMAT = "mmalign-text-embeddings-v1"
TENSOR_NAME = "embeddings"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """``override``, else ``$MMALIGN_CACHE_DIR``, else ``~/.cache/mmalign/embeddings``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("MMALIGN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mmalign" / "embeddings"


def cache_key(model_identity: str, settings: dict[str, Any], texts: Sequence[str]) -> str:
    """SHA-256 hex key of (model identity, settings, texts in order)."""
    digest = hashlib.sha256()
    header = json.dumps({"format": CACHE_FORMAT, "model": model_identity, "settings": settings}, sort_keys=True)
    digest.update(header.encode("utf-8") + b"\0")
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()


class EmbeddingCache:
    """A directory of verified safetensors embedding files.

    Args:
        directory: where files live; default `cache_dir` (created on first write).
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = cache_dir(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def load(self, key: str, rows: int) -> np.ndarray | None:
        """The cached ``(rows, dim)`` float32 array under ``key``, or None if absent or invalid."""
        file = self.path(key)
        if not file.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(file), framework="numpy") as handle:
                meta = handle.metadata() or {}
                names = set(handle.keys())
                array = handle.get_tensor(TENSOR_NAME) if names == {TENSOR_NAME} else None
        except Exception as exc:  # corrupt header or truncated file
            warnings.warn(f"ignoring unreadable embedding cache file {file}: {exc}", stacklevel=2)
            return None
        problem = _check(meta, names, array, key, rows)
        if problem:
            warnings.warn(f"ignoring embedding cache file {file}: {problem}; encoding again", stacklevel=2)
            return None
        return array

    def save(self, key: str, embeddings: np.ndarray) -> Path:
        """Write ``embeddings`` under ``key`` atomically (temp file in the same folder, then os.replace)."""
        from safetensors.numpy import save_file

        array = np.ascontiguousarray(embeddings, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (rows, dim), got shape {array.shape}")
        meta = {"format": CACHE_FORMAT, "key": key, "rows": str(array.shape[0]), "dim": str(array.shape[1])}
        return write_atomic(self.path(key), lambda tmp: save_file({TENSOR_NAME: array}, tmp, metadata=meta))


def _check(meta: dict, names: set, array: np.ndarray | None, key: str, rows: int) -> str | None:
    if names != {TENSOR_NAME}:
        return f"expected exactly one tensor {TENSOR_NAME!r}, found {sorted(names)}"
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        return f"metadata does not match (format {meta.get('format')!r}, key {str(meta.get('key'))[:16]!r})"
    if array is None or array.dtype != np.float32 or array.ndim != 2:
        return f"tensor must be 2-D float32, got {getattr(array, 'dtype', None)} {getattr(array, 'shape', None)}"
    if array.shape != (rows, int(meta.get("dim", -1))):
        return f"shape {array.shape} differs from the expected ({rows}, {meta.get('dim')})"
    if not np.isfinite(array).all():
        return "tensor holds NaN or Inf"
    return None
