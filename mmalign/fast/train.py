"""``train_fast``: the training loop of :func:`mmalign.training.train`, made fast.

Same signature, same semantics, same random stream: every step draws ``randperm`` and then one noise
tensor per modality from ``generator`` in exactly the order the eager path does, so for the same seed
the two paths see the same batches and the same noise, and in fp32 their losses and weights agree
to floating-point rounding. What changes:

* the optimiser update is fused (``torch.optim.Adam(fused=True)``: one pass over memory instead of
  one per arithmetic op; the largest single saving on a CPU);
* the noise is drawn outside the forward pass (:mod:`mmalign.fast.forward`), so the step can be
  compiled;
* a cross-reconstruction term with weight 0 (the first ``warmup.cross.start`` epochs) is not
  back-propagated through (``AlignedVAE.total`` already leaves it out of the loss; here its
  decoder pass also stays out of the graph);
* ``precision="bf16"`` runs the matrix products under ``torch.autocast(dtype=torch.bfloat16)``
  (fp32 master weights, fp32 loss terms, fp32 optimiser);
* ``compile=True`` compiles the forward/backward with ``torch.compile`` (fixed shapes; one graph
  per on/off pattern of the warm-up weights, at most four);
* on the CPU in fp32, ``nn.Linear`` runs through oneDNN where that measures faster than MKL
  (:mod:`mmalign.fast.onednn`; ``linear="aten"`` turns it off);
* on a GPU the whole step (gather, forward, backward, Adam, running sums) is one CUDA graph
  (:mod:`mmalign.fast.graphs`), replayed once per step with the random numbers drawn as above;
* ``num_threads`` sets ``torch.set_num_threads`` for the duration (restored after).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Callable, Literal

import torch

from ..config import TrainConfig
from ..engine import AlignedVAE
from ..errors import ConfigError, TrainingError
from ..training import EpochLog, TrainingTensors, check_finite, finish_epoch, progress_bar, weights_at
from .forward import noise_shape, noisy_terms
from .graphs import capturable, capture_available
from .steps import GraphedSteps, Steps
from .onednn import OneDnnLinear, available as onednn_available
from .optim import FusedScope, make_fused_optimizer

Precision = Literal["fp32", "bf16"]
LinearBackend = Literal["auto", "aten", "onednn"]


def autocast_context(device: torch.device, precision: Precision, cache: bool = True):
    """``torch.autocast`` to bf16 for ``"bf16"``, nothing for ``"fp32"`` (``cache=False`` for a
    step captured as a CUDA graph, as torch asks)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
    raise ConfigError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


@contextlib.contextmanager
def thread_count(num_threads: int | None):
    """``torch.set_num_threads(num_threads)`` for the duration (``None``: leave as is)."""
    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise ConfigError(f"num_threads must be >= 1, got {num_threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def linear_context(device: torch.device, precision: Precision, compile: bool, linear: LinearBackend):
    """The :class:`OneDnnLinear` mode where it applies (CPU, fp32, not compiled), else nothing."""
    if linear not in ("auto", "aten", "onednn"):
        raise ConfigError(f"linear must be 'auto', 'aten' or 'onednn', got {linear!r}")
    applies = device.type == "cpu" and precision == "fp32" and not compile and onednn_available()
    if linear == "onednn" and not applies:
        raise ConfigError("linear='onednn' needs the CPU, precision='fp32', compile=False and a oneDNN build of torch")
    return OneDnnLinear() if linear != "aten" and applies else None


def make_step_fn(model: AlignedVAE, precision: Precision, compile: bool, device: torch.device,
                 linear: LinearBackend = "auto", graphed: bool = False) -> Callable:
    """``fn(batch, masks, eps, weights, active) -> terms vector``: the forward pass of one step."""
    autocast_context(device, precision)  # validates precision
    mode = linear_context(device, precision, compile, linear)

    def step_terms(batch, masks, eps, weights, active):
        with autocast_context(device, precision, cache=not graphed), (mode or contextlib.nullcontext()):
            return noisy_terms(model, batch, masks, eps, weights, active)

    if compile:
        return torch.compile(step_terms, dynamic=False)
    return step_terms


def train_fast(
    model: AlignedVAE,
    data: TrainingTensors,
    config: TrainConfig,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer | None = None,
    start_epoch: int = 0,
    progress: bool = True,
    on_epoch_end: Callable[[int, list[EpochLog]], None] | None = None,
    *,
    precision: Precision = "fp32",
    compile: bool = False,
    num_threads: int | None = None,
    linear: LinearBackend = "auto",
    graphs: bool | None = None,
) -> list[EpochLog]:
    """Train ``model`` in place, like :func:`mmalign.training.train` (same arguments, same return).

    Keyword-only extras (defaults: fp32, not compiled, thread count untouched):

    * ``precision``: ``"fp32"`` or ``"bf16"`` (autocast of the matrix products; master weights,
      losses and optimiser stay fp32);
    * ``compile``: ``torch.compile`` the step's forward/backward (pays a one-off compile time);
    * ``num_threads``: intra-op threads for the duration. On a CPU shared with other work, OpenMP's
      default spin-waiting makes 2 threads 5-10x *slower* than 1; start Python with
      ``OMP_WAIT_POLICY=PASSIVE`` (read when torch loads, so it cannot be set from here) or use one
      thread (``benchmarks/SPEED.md``);
    * ``linear``: ``"auto"`` (oneDNN for the fp32 CPU products where it measures faster), ``"aten"``
      (PyTorch's default kernels) or ``"onednn"`` (require the oneDNN route);
    * ``graphs``: replay the step as a CUDA graph (:mod:`mmalign.fast.graphs`; with ``compile``, the
      compiled kernels are captured); ``None`` (default) means on for CUDA. ``True`` on a CPU runs
      the same static-buffer loop without capturing (for testing it).

    A given ``optimizer`` that is a plain ``torch.optim.Adam`` (e.g. restored for a resumed run) is
    switched to the fused kernel in place for the duration (:class:`~mmalign.fast.optim.FusedScope`)
    and is back to its own settings whenever ``on_epoch_end(epoch, history)`` runs and on return.
    """
    params = list(model.parameters())
    optimizer = optimizer or make_fused_optimizer(params, config)
    fused = FusedScope(optimizer)
    model.train()
    n = data.num_samples
    if n == 0:
        raise TrainingError("no training samples: the training split is empty")
    batch_size = min(config.batch_size, n)
    steps = math.ceil(n / config.batch_size)
    device = data.labels.device
    if graphs is None:
        graphs = capture_available(device)
    names = model.term_names()
    dtype = params[0].dtype
    shape = noise_shape(model, batch_size)
    step_fn = make_step_fn(model, precision, compile, device, linear, graphed=graphs)
    history: list[EpochLog] = []
    bar = progress_bar(config.epochs, start_epoch, progress)
    try:
        fused.enter()
        with thread_count(num_threads), capturable(optimizer, graphs and capture_available(device)):
            terms = lambda idx, eps, w, active: step_fn(*data.batch(idx), eps, w, active)  # noqa: E731
            args = (None, n, batch_size, model.names, shape, len(names), terms, optimizer, device, dtype)
            stepper = GraphedSteps(*args, params) if graphs else Steps(*args, weights_tensor=compile)
            for epoch in range(start_epoch, config.epochs):
                started = time.perf_counter()
                sums = stepper.start_epoch(weights_at(epoch, config))
                for step in range(steps):
                    stepper.step([generator])
                    if (step + 1) % config.log_every == 0:
                        check_finite(names, sums, epoch, step)
                finish_epoch(names, sums, steps, epoch, started, history, bar)
                if on_epoch_end is not None:
                    fused.exit()
                    on_epoch_end(epoch, history)
                    fused.enter()
    finally:
        fused.exit()
        if bar is not None:
            bar.close()
    model.eval()
    return history

