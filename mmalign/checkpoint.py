"""Checkpoint directories: ``config.json`` + ``model.safetensors`` + ``normalisers.safetensors``.

``config.json`` holds the format version, the validated config, each modality's key, name, options,
input dimension and the plugin (and version) that provides it. Tensors are safetensors only; no
pickle, no ``torch.load``. Each file is written atomically, tensors first and ``config.json`` last,
so a directory with a ``config.json`` whose tensors are missing was never completely written and is
refused. Loading checks the format version, rebuilds the modalities from the registry and loads the
state dict strictly, after checking tensor names and shapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import write_atomic, write_json_atomic
from .errors import CheckpointError

CONFIG = "config.json"
MODEL = "model.safetensors"
NORMALISERS = "normalisers.safetensors"
FORMAT_VERSION = 1


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    write_atomic(path, lambda tmp: save_file(flat, tmp, metadata=metadata))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the checkpoint is incomplete")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def write_checkpoint(
    path: str | Path,
    config: dict[str, Any],
    state: dict[str, torch.Tensor],
    normalisers: dict[str, torch.Tensor],
    extra: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write a checkpoint directory; ``extra`` maps further file names to tensor dicts."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_tensors(path / MODEL, state)
    save_tensors(path / NORMALISERS, normalisers)
    for name, tensors in (extra or {}).items():
        save_tensors(path / name, tensors)
    write_json_atomic(path / CONFIG, {"format_version": FORMAT_VERSION, **config})
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory (expected a folder with {CONFIG} and {MODEL})")
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing; the checkpoint is incomplete")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfg_path}: expected a JSON object")
    version = config.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{cfg_path}: key 'format_version' missing or not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: format_version {version} is newer than this mmalign reads ({FORMAT_VERSION}); upgrade mmalign"
        )
    for key in ("aligner", "modalities"):
        if key not in config:
            raise CheckpointError(f"{cfg_path}: key {key!r} is missing")
    if not isinstance(config["aligner"], dict):
        raise CheckpointError(f"{cfg_path}: key 'aligner' must be an object, got {type(config['aligner']).__name__}")
    if not isinstance(config["modalities"], list):
        raise CheckpointError(f"{cfg_path}: key 'modalities' must be a list of modality entries, got {type(config['modalities']).__name__}")
    return config


def check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Every floating-point tensor must hold finite values only (no NaN, no infinity)."""
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{path}: tensor {key!r} holds {bad} NaN or infinite value(s); "
                                  "the saved state is unusable (did training diverge?)")


def check_state(path: Path, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    """Tensor names, shapes and dtypes must match exactly (before ``load_state_dict(strict=True)``),
    and every value must be finite."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensors missing {missing[:5]} / unexpected {extra[:5]}")
    for key, tensor in expected.items():
        if tuple(found[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: tensor {key!r} has shape {tuple(found[key].shape)}, expected {tuple(tensor.shape)}"
            )
        if found[key].dtype != tensor.dtype:
            raise CheckpointError(f"{path}: tensor {key!r} has dtype {str(found[key].dtype).removeprefix('torch.')}, "
                                  f"expected {str(tensor.dtype).removeprefix('torch.')}")
    check_finite(path, found)
