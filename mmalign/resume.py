"""Training state for resuming a killed run: one safetensors file, replaced atomically.

The file holds the model weights, the optimizer's state, the batch/noise generator's state, the
normaliser state and (as metadata) the epoch reached, the loss history and the config. A single
file written by rename is always either the previous complete state or the new one, so a run killed
mid-epoch or mid-save resumes from the last completed checkpoint epoch; on the CPU the resumed run
reaches exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from .checkpoint import load_tensors, save_tensors
from .errors import CheckpointError
from .training import EpochLog

STATE_FILE = "training_state.safetensors"
STATE_VERSION = 1


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten ``optimizer.state_dict()`` into tensors plus JSON-able scalars."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars["state"].setdefault(str(pid), {})[key] = value
    return tensors, scalars


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in scalars.get("state", {}).items():
        state.setdefault(int(pid), {}).update(values)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"optimizer state does not fit this model ({exc})") from None


def save_training_state(
    folder: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    normalisers: dict[str, torch.Tensor],
    epochs_done: int,
    history: list[EpochLog],
    config: dict[str, Any],
    distributed: dict[str, Any] | None = None,
) -> Path:
    """Write the training state atomically; ``distributed`` (world size and backend of a
    data-parallel run, default None) is recorded beside ``config`` but never compared on resume."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_scalars = optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors.update({f"norm.{k}": v for k, v in normalisers.items()})
    tensors["rng.generator"] = generator.get_state()
    metadata = {
        "state_version": str(STATE_VERSION),
        "epochs_done": str(epochs_done),
        "history": json.dumps([asdict(h) for h in history]),
        "optimizer": json.dumps(opt_scalars),
        "config": json.dumps(config, sort_keys=True),
    }
    if distributed is not None:
        metadata["distributed"] = json.dumps(distributed, sort_keys=True)
    path = Path(folder) / STATE_FILE
    save_tensors(path, tensors, metadata)
    return path


def load_training_state(folder: str | Path) -> dict[str, Any]:
    """The saved state, split into its parts; raises :class:`CheckpointError` if unusable."""
    path = Path(folder) / STATE_FILE
    tensors = load_tensors(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        version = int(meta["state_version"])
        if version > STATE_VERSION:
            raise CheckpointError(f"{path}: state_version {version} is newer than this mmalign reads ({STATE_VERSION})")
        parts = {
            "epochs_done": int(meta["epochs_done"]),
            "history": [EpochLog(**h) for h in json.loads(meta["history"])],
            "optimizer_scalars": json.loads(meta["optimizer"]),
            "config": json.loads(meta["config"]),
        }
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: metadata is missing or malformed ({exc})") from None
    if "rng.generator" not in tensors:
        raise CheckpointError(f"{path}: tensor 'rng.generator' is missing")
    parts["model"] = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    parts["optimizer"] = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    parts["normalisers"] = {k[5:]: v for k, v in tensors.items() if k.startswith("norm.")}
    parts["generator"] = tensors["rng.generator"]
    return parts
