"""One run on several processes (``torchrun``): data-parallel training through
``torch.nn.parallel.DistributedDataParallel``.

Every rank holds the same generator (same seed), so every rank draws the same global batch of a
step exactly as `draw` draws it (``randperm``, then one
noise tensor per modality for the whole batch) and keeps its contiguous share of the rows
(`share`). DDP all-reduces the gradients; CADA's loss is a *sum* over the batch while DDP
averages over ranks, so with ``reduction = "sum"`` each rank back-propagates ``world_size`` times its
share's loss and the all-reduced gradient is the single-process gradient of the full batch. The
logged terms of every step are all-reduced too, so the history is the single-process history up to
floating-point rounding, and the saved state (written by rank 0 only) is the single-process state:
a run resumes with any world size.

Families whose per-sample value depends on the rest of the batch (``LossTerm.batch_coupled``, e.g.
the ``contrastive`` InfoNCE) cannot be split across ranks and are refused while they are active.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError, TrainingError
from ..schedule import LossWeights
from .steps import PlainStep, Terms


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the process group (``backend``: ``gloo`` or ``nccl``)."""

    rank: int
    world_size: int
    backend: str
    local_rank: int = 0

    @property
    def primary(self) -> bool:
        """Rank 0: the one process that writes checkpoints and prints."""
        return self.rank == 0

    def describe(self) -> dict[str, object]:
        """What a checkpoint records: ``{"world_size": ..., "backend": ...}``."""
        return {"world_size": self.world_size, "backend": self.backend}


def current() -> DistributedContext | None:
    """The initialised process group of this process, or ``None`` (none, or a group of one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return DistributedContext(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()),
                              int(os.environ.get("LOCAL_RANK", 0)))


@dataclass(frozen=True)
class LaunchEnv:
    """The process group ``torchrun`` describes in the environment, checked (`check_env`)."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    timeout: float


def _env_int(name: str, default: str | None, low: int, high: int | None = None) -> int:
    raw = os.environ.get(name, default)
    if raw is None:
        raise ConfigError(f"torchrun environment: {name} is not set; launch with torchrun (which sets RANK, "
                          "WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) or set all of them")
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ConfigError(f"torchrun environment: {name}={raw!r}: expected an integer {span}")
    return value


def check_env() -> LaunchEnv | None:
    """Check the launch environment before anything joins a group (a bad value would hang in the
    rendezvous or fall back silently to one process); ``None`` when not launched by ``torchrun``
    (no ``WORLD_SIZE``, or 1). Raises `ConfigError` naming the variable and what was expected.
    ``MMALIGN_RENDEZVOUS_TIMEOUT`` (seconds, default `RENDEZVOUS_TIMEOUT`) bounds the wait for
    the other ranks."""
    if not os.environ.get("WORLD_SIZE", "").strip():
        return None
    world = _env_int("WORLD_SIZE", None, 1)
    if world == 1:
        return None
    rank = _env_int("RANK", None, 0, world - 1)
    local = _env_int("LOCAL_RANK", "0", 0, world - 1)
    addr = os.environ.get("MASTER_ADDR", "").strip()
    if not addr:
        raise ConfigError("torchrun environment: MASTER_ADDR is not set; it names the host of rank 0 (e.g. 127.0.0.1)")
    port = _env_int("MASTER_PORT", None, 1, 65535)
    raw = os.environ.get(TIMEOUT_ENV, str(RENDEZVOUS_TIMEOUT))
    try:
        timeout = float(raw)
    except ValueError:
        timeout = float("nan")
    if not (timeout > 0 and timeout != float("inf")):
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return LaunchEnv(rank, world, local, addr, port, timeout)


#: Seconds every rank waits for the others to join (default 300; ``MMALIGN_RENDEZVOUS_TIMEOUT``).
RENDEZVOUS_TIMEOUT = 300.0
TIMEOUT_ENV = "MMALIGN_RENDEZVOUS_TIMEOUT"


def init_from_env(device: str = "auto") -> DistributedContext | None:
    """Join the process group ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, checked first by `check_env`); ``None``
    when not launched by it (no ``WORLD_SIZE``, or 1). Backend ``nccl`` on CUDA (each rank on
    ``cuda:LOCAL_RANK``), ``gloo`` on the CPU. ``device``: the run's device setting (``auto``,
    ``cpu``, ``cuda``). Ranks that do not all join within the rendezvous timeout end in a
    `TrainingError`."""
    launch = check_env()
    if launch is None:
        return None
    if dist.is_initialized():
        return current()
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        if launch.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"torchrun environment: LOCAL_RANK={launch.local_rank}, but this host has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        torch.cuda.set_device(launch.local_rank)
    with _native_stderr() as replay:
        try:
            dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timedelta(seconds=launch.timeout))
        except (RuntimeError, TimeoutError, ValueError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise TrainingError(f"torchrun rendezvous at {launch.master_addr}:{launch.master_port} failed for rank "
                                f"{launch.rank} of {launch.world_size} (waited at most {launch.timeout:g} s, "
                                f"{TIMEOUT_ENV}): {first}") from None
        replay.append(True)  # joined: what c10d printed meanwhile is shown after all
    return current()


@contextlib.contextmanager
def _native_stderr():
    """Hold back what the C++ side (c10d's retries, with its stack frames) writes to file descriptor
    2 during the rendezvous: shown when the rendezvous succeeds (the body appends to the yielded
    list) or with ``MMALIGN_DEBUG``, dropped when it fails, whose one-line error says it all."""
    import sys
    import tempfile

    replay: list[bool] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded): nothing to hold back
        yield replay
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield replay
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if replay or os.environ.get("MMALIGN_DEBUG"):
                held.seek(0)
                text = held.read()
                if text:
                    os.write(2, text)


def shutdown() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous rows of a ``batch_size`` batch (the first ``batch_size % world_size``
    ranks get one row more)."""
    if batch_size < world_size:
        raise ConfigError(f"batch_size {batch_size} is smaller than the world size {world_size}: every rank needs rows")
    base, extra = divmod(batch_size, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class _Forward(nn.Module):
    """The step's forward as a module, so DDP sees the model's parameters and hooks the backward."""

    def __init__(self, model: nn.Module, terms: Terms) -> None:
        super().__init__()
        self.model, self.terms = model, terms

    def forward(self, idx: torch.Tensor, eps: dict, weights: object, active: object) -> torch.Tensor:
        return self.terms(idx, eps, weights, active)


class DistributedStep(PlainStep):
    """`PlainStep` for one run on ``context.world_size`` ranks (see the module docstring).

    ``model`` is the run's `AlignedVAE` (its parameters are the ones
    ``terms`` trains); ``reduction`` its batch reduction; ``masked``: whether some modality has
    missing rows (then ``reduction = "mean"`` cannot be split exactly and is refused);
    ``batch_coupled``: the families whose terms depend on the whole batch.
    """

    def __init__(self, num_samples: int, batch_size: int, names: Sequence[str], reparameterization: str,
                 latent_size: int, families: Sequence[str], num_terms: int, terms: Terms,
                 optimizer: torch.optim.Optimizer, device: torch.device, dtype: torch.dtype, *,
                 model: nn.Module, context: DistributedContext, reduction: str, masked: bool,
                 batch_coupled: Sequence[str] = ()) -> None:
        super().__init__(1, num_samples, batch_size, names, reparameterization, latent_size, families, num_terms,
                         terms, optimizer, device, dtype)
        world = context.world_size
        if reduction == "mean" and (masked or batch_size % world):
            raise ConfigError(f"reduction 'mean' splits exactly across {world} ranks only without missing rows and "
                              f"with batch_size divisible by the world size (got {batch_size}); use reduction 'sum'")
        self.context, self.rows, self.batch_coupled = context, share(batch_size, context.rank, world), set(batch_coupled)
        # DDP averages gradients over ranks: a summed loss is scaled back to the full batch's sum.
        self.scale = float(world) if reduction == "sum" else 1.0
        self.log_divisor = 1.0 if reduction == "sum" else float(world)
        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        self.ddp = nn.parallel.DistributedDataParallel(_Forward(model, terms), device_ids=ids)

    def start_epoch(self, weights: LossWeights) -> torch.Tensor:
        sums = super().start_epoch(weights)
        coupled = sorted(self.batch_coupled & set(self.active))
        if coupled:
            raise ConfigError(f"loss famil{'ies' if len(coupled) > 1 else 'y'} {coupled} compare each sample with "
                              "the rest of the batch and cannot be split across ranks; train them in one process")
        return sums

    def step(self, generators: Sequence[torch.Generator]) -> None:
        (generator,) = generators
        idx, eps = self.draw(generator)  # the whole global batch, as one process draws it
        idx = idx[self.rows][None]
        eps = {n: e[self.rows][None] for n, e in eps.items()}
        out = self.ddp(idx, eps, self.weights, self.active)
        self.optimizer.zero_grad(set_to_none=True)
        (out[:, -1].sum() * self.scale).backward()
        self.optimizer.step()
        logged = out.detach().clone()
        dist.all_reduce(logged)
        if self.log_divisor != 1.0:
            logged /= self.log_divisor
        self.sums.add_(logged)
