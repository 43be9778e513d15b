"""Memory a model will need, estimated from the config and the data dimensions before anything
is allocated, so an absurd latent size or hidden width is a config error naming the key instead
of an allocator traceback minutes later.

The networks are built on PyTorch's ``meta`` device (shapes only, no storage) to count their
parameters exactly; training holds each parameter five times in float32 (weights, gradients and
Adam's three AMSGrad buffers).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Mapping

import torch

from .errors import ConfigError
from .modality import Modality

#: float32 copies of every parameter during training: weights, gradients, Adam (AMSGrad) buffers.
TRAINING_COPIES = 5
#: What a parameter count stands for when the networks cannot even be shaped (sizes beyond int64).
UNBUILDABLE = 2**62


def modality_parameters(modality: Modality, in_dim: int, latent_size: int) -> int | None:
    """Parameters of one modality's encoder + decoder; ``None`` when its builders cannot run on the
    meta device (a custom modality), `UNBUILDABLE` when the sizes cannot exist."""
    if _largest_size(modality, latent_size) > 2**40:  # beyond what a shape can hold
        return UNBUILDABLE
    try:
        with torch.device("meta"):
            nets = (modality.build_encoder(in_dim, latent_size), modality.build_decoder(latent_size, in_dim))
    except (RuntimeError, OverflowError):
        return UNBUILDABLE
    except Exception:  # a builder that needs real tensors: no estimate for it
        return None
    return sum(p.numel() for net in nets for p in net.parameters())


def _largest_size(modality: Modality, latent_size: int) -> int:
    """The largest integer among the latent size and the modality's (nested) integer options."""
    values: list = [latent_size, *modality.options.model_dump().values()]
    largest = 0
    while values:
        v = values.pop()
        if isinstance(v, (list, tuple)):
            values.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            largest = max(largest, v)
    return largest


def parameter_counts(modalities: Mapping[str, Modality], dims: Mapping[str, int], latent_size: int) -> dict[str, int]:
    """Per modality name, its parameter count (modalities that cannot be estimated are left out;
    a missing dimension counts as 1, a lower bound)."""
    counts = {}
    for name, modality in modalities.items():
        n = modality_parameters(modality, int(dims.get(name) or 1), latent_size)
        if n is not None:
            counts[name] = n
    return counts


def available_bytes(device: torch.device) -> int:
    """Memory free for new allocations on ``device`` (CUDA: free device memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def training_bytes(parameters: int) -> int:
    """Bytes training holds for ``parameters`` float32 parameters."""
    return parameters * 4 * TRAINING_COPIES


def _gib(n: int) -> str:
    return "more than 2^60 bytes" if n >= UNBUILDABLE else f"{n / 2**30:.1f} GiB"


def _culprit(modalities: Mapping[str, Modality], dims: Mapping[str, int], latent_size: int) -> str:
    """The size whose reset to 1 shrinks the networks most: ``latent_size`` or a modality's ``hidden``."""
    options = {f"key 'latent_size' ({latent_size})": sum(parameter_counts(modalities, dims, 1).values())}
    for name, modality in modalities.items():
        hidden = getattr(modality.options, "hidden", None)
        if hidden is None:
            continue
        small = copy.copy(modality)
        small.options = modality.options.model_copy(update={"hidden": tuple(1 for _ in hidden)})
        total = sum(parameter_counts({**modalities, name: small}, dims, latent_size).values())
        options[f"modality {name!r} key 'hidden' ({list(hidden)})"] = total
    return min(options, key=options.get)


def check_model_memory(
    modalities: Mapping[str, Modality], dims: Mapping[str, int], latent_size: int, device: torch.device,
    where: str = "config",
) -> int:
    """Raise `ConfigError` naming the key to change when training would not fit in the
    memory free on ``device``; returns the estimated bytes otherwise."""
    counts = parameter_counts(modalities, dims, latent_size)
    total = min(sum(counts.values()), UNBUILDABLE)
    need = training_bytes(total)
    free = available_bytes(device)
    if need <= free:
        return need
    key = _culprit(modalities, dims, latent_size)
    raise ConfigError(f"{where}: {key}: the networks would need {_gib(need)} to train (parameters, gradients and "
                      f"optimizer state) but {device.type} has {_gib(free)} free; use smaller sizes")
