"""Training state for resuming a killed run: one safetensors file, replaced atomically.

The file holds the model weights, the optimizer's state, the batch/noise generator's state, the
normaliser state and (as metadata) the epoch reached, the loss history and the config. A single
file written by rename is always either the previous complete state or the new one, so a run killed
mid-epoch or mid-save resumes from the last completed checkpoint epoch; on the CPU the resumed run
reaches exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from .checkpoint import check_finite, load_tensors, save_tensors
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
    critics: dict[str, torch.optim.Optimizer] | None = None,
) -> Path:
    """Write the training state atomically; ``distributed`` (world size and backend of a
    data-parallel run, default None) is recorded beside ``config`` but never compared on resume;
    ``critics`` (adversarial loss family -> its module's optimiser, default None) are saved as
    tensors ``critic.<family>.<n>.<name>`` and metadata ``critics``."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_scalars = optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors.update({f"norm.{k}": v for k, v in normalisers.items()})
    tensors["rng.generator"] = generator.get_state()
    critic_scalars = {}
    for family, critic in (critics or {}).items():
        part, critic_scalars[family] = optimizer_tensors(critic)
        tensors.update({f"critic.{family}.{k.split('.', 1)[1]}": v for k, v in part.items()})
    metadata = {
        "state_version": str(STATE_VERSION),
        "epochs_done": str(epochs_done),
        "history": json.dumps([asdict(h) for h in history]),
        "optimizer": json.dumps(opt_scalars),
        "config": json.dumps(config, sort_keys=True),
    }
    if distributed is not None:
        metadata["distributed"] = json.dumps(distributed, sort_keys=True)
    if critics:
        metadata["critics"] = json.dumps(critic_scalars)
    path = Path(folder) / STATE_FILE
    save_tensors(path, tensors, metadata)
    return path


def _field(path: Path, name: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: field {name!r} {problem}; the training state is unusable (drop --resume or use a new output folder)")


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_history(path: Path, history: Any, epochs_done: int) -> list[EpochLog]:
    """One `EpochLog` per finished epoch, epochs ``0..epochs_done-1`` in order, every value
    of the type it was saved with."""
    if not isinstance(history, list):
        raise _field(path, "history", f"must be a list of epoch logs, got {type(history).__name__}")
    if len(history) != epochs_done:
        raise _field(path, "history", f"holds {len(history)} epoch(s) but 'epochs_done' is {epochs_done}")
    names = {f.name: f for f in fields(EpochLog)}
    logs = []
    for i, entry in enumerate(history):
        where = f"history[{i}]"
        if not isinstance(entry, dict):
            raise _field(path, where, f"must be an object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - set(names))
        if unknown:
            raise _field(path, f"{where}.{unknown[0]}", "is not a field of an epoch log")
        for name, f in names.items():
            if name not in entry:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise _field(path, f"{where}.{name}", "is missing")
                continue
            value = entry[name]
            if name == "epoch":
                ok = isinstance(value, int) and not isinstance(value, bool) and value == i
                expected = f"the integer {i}"
            elif isinstance(value, dict):
                ok = all(isinstance(k, str) and _finite_number(v) for k, v in value.items())
                expected = "an object of finite numbers"
            else:
                ok = _finite_number(value) and value >= 0
                expected = "a finite non-negative number"
            if not ok:
                raise _field(path, f"{where}.{name}", f"must be {expected}, got {json.dumps(value)[:40]}")
        logs.append(EpochLog(**entry))
    return logs


def _saved_epochs(config: dict[str, Any]) -> int | None:
    try:
        epochs = config["describe"]["aligner"]["training"]["epochs"]
    except (KeyError, TypeError):
        return None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def _check_optimizer(path: Path, scalars: Any, tensors: dict[str, torch.Tensor]) -> None:
    if not isinstance(scalars, dict) or not isinstance(scalars.get("param_groups"), list) \
            or not all(isinstance(g, dict) for g in scalars["param_groups"]):
        raise _field(path, "optimizer", "must be an object with a list of 'param_groups'")
    state = scalars.get("state", {})
    if not isinstance(state, dict) or not all(k.isdigit() and isinstance(v, dict) for k, v in state.items()):
        raise _field(path, "optimizer.state", "must map parameter numbers to objects")
    for name in tensors:
        parts = name.split(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise _field(path, name, "is not a tensor name this mmalign writes (expected 'optim.<n>.<name>')")


def load_training_state(folder: str | Path, generator: torch.Generator | None = None) -> dict[str, Any]:
    """The saved state, split into its parts; raises `CheckpointError` naming the file and
    the field when it is unusable: unreadable, newer, counters out of range, values of another type
    than saved, non-finite tensors, or (given ``generator``) a generator state of the wrong size."""
    path = Path(folder) / STATE_FILE
    tensors = load_tensors(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: metadata is unreadable ({exc})") from None
    for key in ("state_version", "epochs_done", "history", "optimizer", "config"):
        if key not in meta:
            raise _field(path, key, "is missing")
    for key in ("state_version", "epochs_done"):
        if not meta[key].isdigit():
            raise _field(path, key, f"must be a non-negative integer, got {meta[key][:40]!r}")
    version = int(meta["state_version"])
    if version > STATE_VERSION:
        raise CheckpointError(f"{path}: state_version {version} is newer than this mmalign reads ({STATE_VERSION})")
    decoded = {}
    for key in ("history", "optimizer", "config"):
        try:
            decoded[key] = json.loads(meta[key])
        except json.JSONDecodeError as exc:
            raise _field(path, key, f"is not valid JSON ({exc})") from None
    if not isinstance(decoded["config"], dict):
        raise _field(path, "config", f"must be an object, got {type(decoded['config']).__name__}")
    epochs_done = int(meta["epochs_done"])
    total = _saved_epochs(decoded["config"])
    if total is not None and epochs_done > total:
        raise _field(path, "epochs_done", f"is {epochs_done}, beyond the run's {total} epochs")
    parts: dict[str, Any] = {
        "epochs_done": epochs_done,
        "history": _check_history(path, decoded["history"], epochs_done),
        "optimizer_scalars": decoded["optimizer"],
        "config": decoded["config"],
    }
    if "rng.generator" not in tensors:
        raise CheckpointError(f"{path}: tensor 'rng.generator' is missing")
    rng = tensors["rng.generator"]
    expected = generator.get_state() if generator is not None else None
    if rng.dtype != torch.uint8 or rng.ndim != 1 or (expected is not None and rng.numel() != expected.numel()):
        size = f"{expected.numel()} " if expected is not None else ""
        raise _field(path, "rng.generator", f"must be a generator state of {size}uint8 values, got "
                     f"{str(rng.dtype).removeprefix('torch.')} of shape {tuple(rng.shape)}")
    check_finite(path, {k: v for k, v in tensors.items() if k != "rng.generator"})
    parts["model"] = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    parts["optimizer"] = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    _check_optimizer(path, parts["optimizer_scalars"], parts["optimizer"])
    parts["normalisers"] = {k[5:]: v for k, v in tensors.items() if k.startswith("norm.")}
    parts["generator"] = rng
    parts["critics"] = _critics(path, meta, tensors)
    return parts


def _critics(path: Path, meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> dict[str, tuple[dict, dict]]:
    """Adversarial family -> (its optimiser's tensors named ``optim.<n>.<name>``, its scalars)."""
    try:
        scalars = json.loads(meta.get("critics", "{}"))
    except json.JSONDecodeError as exc:
        raise _field(path, "critics", f"is not valid JSON ({exc})") from None
    if not isinstance(scalars, dict):
        raise _field(path, "critics", "must map loss families to optimiser states")
    out = {}
    for family, scalar in scalars.items():
        prefix = f"critic.{family}."
        part = {"optim." + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        _check_optimizer(path, scalar, part)
        out[family] = (part, scalar)
    return out
