"""The training loop: seeded, device-agnostic, data resident on the device, host syncs only every
``log_every`` steps (progress bar and the non-finite check).

An epoch is ``ceil(N_train / batch_size)`` steps; every step draws ``batch_size`` distinct training
samples (a fresh random permutation per step, as the reference code does) and, for per-class
modalities, the rows of the samples' classes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from .config import TrainConfig
from .engine import AlignedVAE, LossWeights
from .errors import TrainingError
from .losses import ramp


@dataclass
class TrainingTensors:
    """Normalised training data on the device.

    ``sample[name]`` is ``(N, d)`` for per-sample modalities, ``by_class[name]`` is ``(C, d)`` for
    per-class ones, ``labels`` is ``(N,)``; ``masks[name]`` optionally ``(N,)`` (1 = present).
    """

    labels: torch.Tensor
    sample: dict[str, torch.Tensor] = field(default_factory=dict)
    by_class: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        rows = {n: x[idx] for n, x in self.sample.items()}
        classes = self.labels[idx]
        rows.update({n: x[classes] for n, x in self.by_class.items()})
        return rows, {n: m[idx] for n, m in self.masks.items()}


def weights_at(epoch: int, config: TrainConfig) -> LossWeights:
    """The warm-up weights of an epoch (evaluated per epoch, as in the reference)."""
    w = config.warmup
    return LossWeights(
        beta=ramp(epoch, w.beta.start, w.beta.end, w.beta.factor),
        gamma=ramp(epoch, w.cross.start, w.cross.end, w.cross.factor),
        delta=ramp(epoch, w.distance.start, w.distance.end, w.distance.factor),
    )


def make_optimizer(model: AlignedVAE, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps,
        amsgrad=config.amsgrad, weight_decay=config.weight_decay,
    )


@dataclass
class EpochLog:
    epoch: int
    terms: dict[str, float]
    seconds: float


def train(
    model: AlignedVAE,
    data: TrainingTensors,
    config: TrainConfig,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer | None = None,
    start_epoch: int = 0,
    progress: bool = True,
    on_epoch_end: Callable[[int, list[EpochLog]], None] | None = None,
) -> list[EpochLog]:
    """Train ``model`` in place; returns the mean of every term per epoch.

    ``start_epoch`` continues a resumed run (the optimizer and generator must hold the saved
    state); ``on_epoch_end(epoch, history)`` is called after every epoch (checkpointing).

    Raises :class:`TrainingError` when a loss term becomes NaN or infinite (checked every
    ``log_every`` steps and at the end of each epoch, so no per-step host sync is needed).
    """
    optimizer = optimizer or make_optimizer(model, config)
    model.train()
    n = data.num_samples
    if n == 0:
        raise TrainingError("no training samples: the training split is empty")
    batch_size = min(config.batch_size, n)
    steps = math.ceil(n / config.batch_size)
    device = data.labels.device
    names = model.term_names()
    history: list[EpochLog] = []
    bar = progress_bar(config.epochs, start_epoch, progress)
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            weights = weights_at(epoch, config)
            sums = torch.zeros(len(names), device=device)
            for step in range(steps):
                idx = torch.randperm(n, generator=generator, device=device)[:batch_size]
                batch, masks = data.batch(idx)
                terms = model(batch, weights, masks, generator)
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                sums += torch.stack([terms[k].detach() for k in names])
                if (step + 1) % config.log_every == 0:
                    check_finite(names, sums, epoch, step)
            finish_epoch(names, sums, steps, epoch, started, history, bar)
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return history


def finish_epoch(names: list[str], sums: torch.Tensor, steps: int, epoch: int, started: float,
                 history: list[EpochLog], bar) -> None:
    """End-of-epoch bookkeeping shared by every training loop: the finiteness check, the epoch's
    mean terms in ``history`` and the progress bar (the epoch's one host sync)."""
    check_finite(names, sums, epoch, steps - 1)
    means = dict(zip(names, (sums / steps).tolist()))
    history.append(EpochLog(epoch, means, time.perf_counter() - started))
    if bar is not None:
        bar.set_postfix(short_summary(means), refresh=False)
        bar.update(1)


def check_finite(names: list[str], sums: torch.Tensor, epoch: int, step: int) -> None:
    finite = torch.isfinite(sums)
    if not bool(finite.all()):
        bad = [names[i] for i in torch.nonzero(~finite).flatten().tolist()]
        raise TrainingError(
            f"loss became non-finite in epoch {epoch} by step {step}: terms {bad}. "
            "Check the inputs for extreme values, or lower the learning rate"
        )


def short_summary(means: Mapping[str, float]) -> dict[str, str]:
    """Progress-bar summary: the total and each family of terms."""
    out = {"loss": f"{means['loss']:.4g}"}
    for family in ("recon", "kl", "cross", "align"):
        values = [v for k, v in means.items() if k.startswith(family + "/")]
        if values:
            out[family] = f"{sum(values):.4g}"
    return out


def progress_bar(total: int, start: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="epoch", leave=False)
