"""Training with the engine the config asks for: one model (`train`) or S models stacked
(`train_seeds`), both through the one loop (`Trainer`).

Engines (``TrainConfig.engine``):

* ``auto`` (default): the fastest path that agrees with the reference within floating-point
  rounding on the device. CUDA: the whole step (gather, forward, backward, fused AMSGrad, running
  sums) replayed as one CUDA graph. CPU: fused AMSGrad, fp32 products through oneDNN on non-Intel
  CPUs and MKL on Intel ones (`onednn`), no backward through a family
  while its weight is 0.
  ``precision="bf16"`` (autocast of the matrix products) and ``compile=True`` (``torch.compile``)
  are opt-in on top.
* ``reference``: the plain loop, PyTorch's default kernels and Adam: the faithful path for
  debugging and for checking the others against.

Every engine consumes the generator in the same order (``randperm``, then one noise tensor per
modality per step), so for one seed all engines see the same batches and the same noise.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch

from ..config import TrainConfig
from ..model import AlignedVAE, compute_terms, critic_loss
from ..errors import ConfigError, TrainingError
from ..schedule import LossSchedule
from ..terms import ClassInfo
from .adversarial import AdversarialStep, critic_optimizers, critic_steps
from .callbacks import Callback, EpochLog, ProgressBar
from .distributed import DistributedContext, DistributedStep
from .graphs import capturable, capture_available
from .loop import Trainer
from .onednn import OneDnnLinear, available as onednn_available, preferred as onednn_preferred
from .optim import make_optimizer
from ..threads import thread_count
from .stacked import StackedNetworks
from .steps import GraphedStep, PlainStep
from .tensors import TrainingTensors


def autocast_context(device: torch.device, precision: str, cache: bool = True):
    """``torch.autocast`` to bf16 for ``"bf16"``, nothing for ``"fp32"`` (``cache=False`` for a step
    captured as a CUDA graph, as torch asks)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
    raise ConfigError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


def uses_graphs(config: TrainConfig, device: torch.device, graphs: bool | None = None) -> bool:
    """Whether the step runs as a static-buffer graph: ``auto`` on CUDA, or when asked (``graphs=True``
    on a CPU runs the same static-buffer step uncaptured, for testing it)."""
    if config.engine == "reference":
        if graphs:
            raise ConfigError("engine 'reference' is the plain loop; graphs need engine 'auto'")
        return False
    return capture_available(device) if graphs is None else graphs


def check_engine(config: TrainConfig) -> None:
    if config.engine == "reference" and (config.precision != "fp32" or config.compile):
        raise ConfigError("precision 'bf16' and compile need engine 'auto'; 'reference' is the plain fp32 loop")


def new_optimizer(params, config: TrainConfig, device: torch.device, graphs: bool | None = None) -> torch.optim.Optimizer:
    """The optimiser of ``config.engine`` for ``params`` (see `make_optimizer`)."""
    graphed = uses_graphs(config, device, graphs)
    return make_optimizer(params, config, fused=config.engine != "reference",
                          capturable=graphed and capture_available(device))


def _linear_mode(config: TrainConfig, device: torch.device, linear: str):
    if linear not in ("auto", "aten", "onednn"):
        raise ConfigError(f"linear must be 'auto', 'aten' or 'onednn', got {linear!r}")
    applies = (config.engine == "auto" and device.type == "cpu" and config.precision == "fp32"
               and not config.compile and onednn_available())
    if linear == "onednn" and not applies:
        raise ConfigError("linear='onednn' needs engine 'auto' on the CPU, precision 'fp32', no compile and a oneDNN build of torch")
    if linear == "auto" and not onednn_preferred():
        return None
    return OneDnnLinear() if linear != "aten" and applies else None


def class_info(data: TrainingTensors) -> "Callable[[torch.Tensor], ClassInfo]":
    """``idx -> ClassInfo`` of the rows ``idx``: their labels, positions among the training
    classes (sorted ids) and the per-class tables."""
    classes = torch.unique(data.labels)
    lookup = torch.full((int(classes.max()) + 1 if classes.numel() else 1,), -1, dtype=torch.long,
                        device=data.labels.device)
    lookup[classes] = torch.arange(classes.numel(), device=data.labels.device)

    def info(idx: torch.Tensor) -> ClassInfo:
        labels = data.labels[idx]
        return ClassInfo(labels, lookup[labels], data.by_class)

    return info


def _run(template: AlignedVAE, encode, decode, params: list[torch.Tensor], data: TrainingTensors,
         config: TrainConfig, generators: Sequence[torch.Generator], optimizer: torch.optim.Optimizer | None,
         start_epoch: int, progress: bool, callbacks: Sequence[Callback], graphs: bool | None,
         linear: str, num_threads: int | None,
         distributed: DistributedContext | None = None,
         critics: dict[str, torch.optim.Optimizer] | None = None) -> list[list[EpochLog]]:
    check_engine(config)
    n = data.num_samples
    if n == 0:
        raise TrainingError("no training samples: the training split is empty")
    device = data.labels.device
    if distributed is not None and (graphs or config.compile):
        raise ConfigError("a data-parallel run (torchrun) steps from Python: no CUDA graphs, no compile")
    if not data.resident and (graphs or config.compile):
        raise ConfigError("features read from disk are gathered from Python each step: no CUDA graphs, no compile")
    adversarial = bool(template.adversaries)
    if adversarial and (distributed is not None or graphs or config.compile):
        raise ConfigError(f"adversarial loss families {[t.family for t in template.adversaries]} step from Python: "
                          "no data-parallel run, no CUDA graphs, no compile")
    graphed = False if distributed is not None or not data.resident or adversarial else uses_graphs(config, device, graphs)
    optimizer = optimizer or new_optimizer(params, config, device, graphs)
    schedule = LossSchedule(template.terms, config.warmup)
    names = template.term_names()
    mode = _linear_mode(config, device, linear)

    info = class_info(data)

    def terms(idx, eps, weights, active):
        batch, masks = data.batch(idx)
        with autocast_context(device, config.precision, cache=not graphed), (mode or contextlib.nullcontext()):
            return compute_terms(template, encode, decode, batch, masks, eps, weights, active, info(idx))

    def critic(family, idx, eps):
        batch, masks = data.batch(idx)
        term = next(t for t in template.adversaries if t.family == family)
        with autocast_context(device, config.precision), (mode or contextlib.nullcontext()):
            return critic_loss(template, term, encode, decode, batch, masks, eps, info(idx))

    if config.compile:
        terms = torch.compile(terms, dynamic=False)
    batch_size = min(config.batch_size, n)
    args = (len(generators), n, batch_size, template.names, template.reparameterization, template.latent_size,
            template.families, len(names), terms, optimizer, device, params[0].dtype)
    extra = [ProgressBar(config.epochs, start_epoch)] if progress else []
    template.train()
    try:
        with thread_count(num_threads), capturable(optimizer, graphed and capture_available(device)):
            if distributed is not None:
                step = DistributedStep(*args[1:], model=template, context=distributed, reduction=template.reduction,
                                       masked=bool(data.masks),
                                       batch_coupled=[t.family for t in template.terms if t.batch_coupled])
            elif adversarial:
                step = AdversarialStep(*args, critic=critic, optimizers=critics or critic_optimizers(template),
                                       steps=critic_steps(template), weights_as_tensor=config.compile)
            elif graphed:
                step = GraphedStep(*args, params)
            else:
                step = PlainStep(*args, weights_as_tensor=config.compile)
            trainer = Trainer(step, config, schedule, names, generators, n, start_epoch, [*extra, *callbacks])
            return trainer.run()
    finally:
        template.eval()


def train(model: AlignedVAE, data: TrainingTensors, config: TrainConfig, generator: torch.Generator,
          optimizer: torch.optim.Optimizer | None = None, start_epoch: int = 0, progress: bool = True,
          callbacks: Sequence[Callback] = (), *, graphs: bool | None = None, linear: str = "auto",
          num_threads: int | None = None, distributed: DistributedContext | None = None,
          critics: dict[str, torch.optim.Optimizer] | None = None) -> list[EpochLog]:
    """Train ``model`` in place with ``config.engine``; returns the per-epoch term means.

    ``optimizer`` continues a resumed run (with ``start_epoch``; the generator must hold the saved
    state), default a new one for the engine. ``callbacks`` run after the built-in finite check and
    history. Keyword-only: ``graphs`` (default: on for CUDA with engine ``auto``), ``linear``
    (the fp32 CPU products of engine ``auto``: ``aten`` = MKL, ``onednn``, or ``auto`` = oneDNN
    except on Intel CPUs, `preferred`), ``num_threads``
    (torch's intra-op threads for the duration), ``distributed`` (default ``None``: one process; a
    `DistributedContext` trains data-parallel with
    `DistributedStep`, every rank calling ``train`` alike),
    ``critics`` (family -> optimiser of each adversarial family's module, default new ones from
    `critic_optimizers`; a resumed run passes the restored ones).
    The VAE's optimiser trains `vae_parameters` (every parameter
    but the critics'). Raises `TrainingError` when a loss term becomes NaN or infinite.
    """
    params = model.vae_parameters()
    return _run(model, model.own_encode, model.own_decode, params, data, config, [generator], optimizer,
                start_epoch, progress, callbacks, graphs, linear, num_threads, distributed, critics)[0]


def train_seeds(models: Sequence[AlignedVAE], data: TrainingTensors, config: TrainConfig,
                generators: Sequence[torch.Generator], *, progress: bool = True, start_epoch: int = 0,
                callbacks: Sequence[Callback] = (), graphs: bool | None = None,
                num_threads: int | None = None) -> list[list[EpochLog]]:
    """Train ``len(models)`` runs together as one stacked model; run ``s`` starts from ``models[s]``'s
    weights, draws from ``generators[s]``, keeps its own Adam state and matches ``train(models[s], ...)``
    up to floating-point rounding. The trained weights are loaded back into ``models`` (eval mode);
    returns each run's history. Networks other than CADA's MLPs run through ``torch.func.vmap``
    (they must not draw random numbers in their forward pass)."""
    if len(models) == 0 or len(models) != len(generators):
        raise ConfigError(f"train_seeds needs one generator per model, got {len(models)} models and {len(generators)} generators")
    if config.engine == "reference":
        raise ConfigError("training several seeds together needs engine 'auto'")
    template = models[0]
    if len(template.loss_modules):
        raise ConfigError(f"loss families with their own modules ({list(template.loss_modules)}) train one run at a "
                          "time: use fit() per seed")
    for m in models[1:]:
        if (m.names, m.reparameterization, m.reduction, m.pair_weights, m.families) != \
                (template.names, template.reparameterization, template.reduction, template.pair_weights, template.families):
            raise ConfigError("train_seeds needs models with the same modalities and loss settings")
    nets = StackedNetworks(models)
    histories = _run(template, nets.encode, nets.decode, nets.parameters(), data, config, generators, None,
                     start_epoch, progress, callbacks, graphs, "aten", num_threads)
    order = list(template.state_dict())
    for s, model in enumerate(models):
        state = nets.state_dict(s)
        model.load_state_dict({k: state[k] for k in order}, strict=True)
        model.eval()
    return histories
