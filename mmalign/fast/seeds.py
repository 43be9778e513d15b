"""``train_seeds``: S independent runs trained together as one batched model.

Each run keeps its own initial weights (from its own seed), its own generator (its batch indices and
noise, drawn in the eager path's order) and its own Adam state; only the arithmetic is batched. The
runs' weights are stacked with a leading run dimension (:mod:`mmalign.fast.stacked`: CADA's MLPs as
batched matrix products, any other module through ``vmap``) and the loss is written once for all
runs (:func:`mmalign.fast.forward.batched_terms`). Adam is elementwise and all runs take the same
number of steps, so one fused Adam over the stacked tensors is S independent Adams. Run ``s``
therefore matches ``train(models[s], data, config, generators[s])`` up to floating-point rounding
(the batched products may sum in a different order).

On a GPU this fills the device with small batches (one run of CADA-VAE is launch-bound), and the
step is replayed as one CUDA graph as in :func:`~mmalign.fast.train_fast`; on a CPU it does the same
arithmetic as S sequential runs, so the gain there is small.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..config import TrainConfig
from ..engine import AlignedVAE
from ..errors import ConfigError, TrainingError
from ..training import EpochLog, TrainingTensors, progress_bar, short_summary, weights_at
from .forward import batched_terms, noise_shape
from .graphs import capture_available
from .steps import GraphedSteps, Steps
from .optim import make_fused_optimizer
from .stacked import StackedNetworks
from .train import Precision, autocast_context, thread_count


@dataclass
class SeedRun:
    """One run of :func:`train_seeds`: its trained weights (a ``state_dict`` for an
    :class:`AlignedVAE` built like the input model) and its per-epoch term means."""

    state_dict: dict[str, torch.Tensor]
    history: list[EpochLog]


def _check_finite_seeds(names: list[str], sums: torch.Tensor, epoch: int, step: int) -> None:
    finite = torch.isfinite(sums)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).tolist()
        seeds = sorted({s for s, _ in bad})
        terms = sorted({names[t] for _, t in bad})
        raise TrainingError(
            f"loss became non-finite in epoch {epoch} by step {step} for run(s) {seeds}: terms {terms}. "
            "Check the inputs for extreme values, or lower the learning rate"
        )


def train_seeds(
    models: Sequence[AlignedVAE],
    data: TrainingTensors,
    config: TrainConfig,
    generators: Sequence[torch.Generator],
    *,
    precision: Precision = "fp32",
    compile: bool = False,
    progress: bool = True,
    start_epoch: int = 0,
    num_threads: int | None = None,
    load_back: bool = True,
    on_epoch_end: Callable[[int, list[list[EpochLog]]], None] | None = None,
    graphs: bool | None = None,
) -> list[SeedRun]:
    """Train ``len(models)`` runs together; run ``s`` starts from ``models[s]``'s weights and draws
    from ``generators[s]``.

    Returns one :class:`SeedRun` per model (trained ``state_dict`` + history). With ``load_back``
    (default) the trained weights are also loaded into ``models`` (as :func:`~mmalign.training.train`
    trains in place) and the models are left in eval mode. ``precision``, ``compile`` and
    ``num_threads`` and ``graphs`` as in :func:`mmalign.fast.train_fast`. Training runs epochs ``start_epoch ..
    config.epochs - 1`` (the warm-up weights follow the epoch number) with a fresh optimiser;
    ``on_epoch_end(epoch, histories)`` is called after every epoch.

    Networks other than CADA's MLPs run through ``torch.func.vmap``, so they must not draw random
    numbers in their forward pass (no dropout in training mode).
    """
    if len(models) == 0 or len(models) != len(generators):
        raise ConfigError(f"train_seeds needs one generator per model, got {len(models)} models and {len(generators)} generators")
    template = models[0]
    for m in models[1:]:
        if m.names != template.names or m.reparameterization != template.reparameterization \
                or m.reduction != template.reduction or m.pair_weights != template.pair_weights:
            raise ConfigError("train_seeds needs models with the same modalities and loss settings")
    n = data.num_samples
    if n == 0:
        raise TrainingError("no training samples: the training split is empty")
    device = data.labels.device
    seeds = len(models)
    batch_size = min(config.batch_size, n)
    steps = math.ceil(n / config.batch_size)
    names = template.term_names()
    nets = StackedNetworks(models)
    dtype = nets.parameters()[0].dtype
    shape = noise_shape(template, batch_size)
    if graphs is None:
        graphs = capture_available(device)
    optimizer = make_fused_optimizer(nets.parameters(), config, capturable=graphs and capture_available(device))

    def all_runs(batch, masks, eps, weights, active):
        with autocast_context(device, precision, cache=not graphs):
            return batched_terms(template, nets.encode, nets.decode, batch, masks, eps, weights, active)

    step_fn = torch.compile(all_runs, dynamic=False) if compile else all_runs
    autocast_context(device, precision)  # validates precision
    histories: list[list[EpochLog]] = [[] for _ in range(seeds)]
    bar = progress_bar(config.epochs, start_epoch, progress)
    template.train()
    try:
        with thread_count(num_threads):
            terms = lambda idx, eps, w, active: step_fn(*_gather(data, idx), eps, w, active)  # noqa: E731
            args = (seeds, n, batch_size, template.names, shape, len(names), terms, optimizer, device, dtype)
            stepper = GraphedSteps(*args, nets.parameters()) if graphs else Steps(*args, weights_tensor=compile)
            for epoch in range(start_epoch, config.epochs):
                started = time.perf_counter()
                sums = stepper.start_epoch(weights_at(epoch, config))
                for step in range(steps):
                    stepper.step(generators)
                    if (step + 1) % config.log_every == 0:
                        _check_finite_seeds(names, sums, epoch, step)
                _check_finite_seeds(names, sums, epoch, steps - 1)
                seconds = time.perf_counter() - started
                means = (sums / steps).tolist()
                for s in range(seeds):
                    histories[s].append(EpochLog(epoch, dict(zip(names, means[s])), seconds))
                if bar is not None:
                    bar.set_postfix(short_summary(histories[0][-1].terms), refresh=False)
                    bar.update(1)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, histories)
    finally:
        if bar is not None:
            bar.close()
    order = list(template.state_dict())
    runs = []
    for s in range(seeds):
        state = nets.state_dict(s)
        runs.append(SeedRun({k: state[k] for k in order}, histories[s]))
    if load_back:
        for model, run in zip(models, runs):
            model.load_state_dict(run.state_dict, strict=True)
            model.eval()
    template.eval()
    return runs


def _gather(data: TrainingTensors, idx: torch.Tensor):
    """``data.batch`` for stacked indices ``(S, B)``: every tensor gets a leading seed dimension."""
    rows = {n: x[idx] for n, x in data.sample.items()}
    classes = data.labels[idx]
    rows.update({n: x[classes] for n, x in data.by_class.items()})
    return rows, {n: m[idx] for n, m in data.masks.items()}

