"""The training step as one CUDA graph.

One CADA-VAE step is a few hundred small kernels. On a GPU, launching them one by one from Python
takes longer than running them, so the step is captured once as a CUDA graph and replayed: one
launch per step. What makes that possible without changing the training:

* the step reads its random numbers from static buffers that the loop refills before each replay
  with the same generator calls, in the same order, as the eager path (``randperm`` then one
  ``randn`` per modality, written with ``out=``), so the random stream is unchanged;
* every loss family is computed, weighted by a static ``(beta, gamma, delta)`` tensor that the loop
  sets each epoch: a family still in its warm-up has weight 0, which adds exactly 0 to the loss and
  the gradients, so one graph serves every epoch;
* the gradients, Adam's update (``fused=True, capturable=True``) and the running sums of the logged
  terms are inside the graph.

Capturing needs a few eager warm-up steps first (cuBLAS and the allocator set themselves up on the
first calls). Those steps run on random numbers from a scratch generator, and the parameters and
optimiser state are put back afterwards, so the run starts exactly where it would have.

On a CPU (``capture=False``) :class:`StepGraph` simply calls the step: the static-buffer loop runs
as is, which the tests use to check it against the plain loop.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import torch

#: Every weighted loss family on: the graph's one pattern (a family in warm-up has weight 0).
ALL_FAMILIES = (True, True, True)


class StepGraph:
    """``body`` (a step that reads and writes only static tensors) as a replayable CUDA graph.

    ``refill(generator)`` writes a step's random numbers into the static buffers; it is called with a
    scratch generator for the warm-up steps. ``params`` and ``optimizer`` are restored after the
    warm-up. With ``capture=False`` :meth:`replay` just calls ``body``.
    """

    def __init__(self, body: Callable[[], None], refill: Callable[[torch.Generator], None],
                 params: list[torch.Tensor], optimizer: torch.optim.Optimizer, capture: bool,
                 warmup_steps: int = 3) -> None:
        self.body = body
        self.graph: torch.cuda.CUDAGraph | None = None
        if not capture:
            return
        device = params[0].device
        saved = _snapshot(params, optimizer)
        scratch = torch.Generator(device=device).manual_seed(0)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup_steps):
                refill(scratch)
                body()
        torch.cuda.current_stream(device).wait_stream(side)
        _restore(saved, params, optimizer)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            body()

    def replay(self) -> None:
        if self.graph is None:
            self.body()
        else:
            self.graph.replay()


class GraphedSteps:
    """A training loop's step on static buffers, replayed as a CUDA graph where one can be captured.

    ``runs=None``: one run, buffers ``perm (n,)``, ``eps[name] (B, z)``, ``sums (T,)`` and one
    generator; ``runs=S``: S runs trained together, every buffer with a leading ``S`` and one
    generator per run. ``terms(idx, eps, weights)`` is the forward pass (``idx`` the batch's rows,
    ``(B,)`` or ``(S, B)``) returning the terms, the loss last; the step back-propagates the loss
    (summed over runs), takes the optimiser step and adds the detached terms to :attr:`sums`.
    """

    def __init__(self, runs: int | None, n: int, batch_size: int, names: Sequence[str], shape: tuple[int, int],
                 num_terms: int, terms: Callable, params: list[torch.Tensor], optimizer: torch.optim.Optimizer,
                 device: torch.device, dtype: torch.dtype) -> None:
        lead = () if runs is None else (runs,)
        self.runs, self.n, self.names, self.shape, self.device, self.dtype = runs, n, list(names), shape, device, dtype
        self.perm = torch.empty(*lead, n, dtype=torch.long, device=device)
        self.eps = {name: torch.empty(*lead, *shape, device=device, dtype=dtype) for name in self.names}
        self.weights = torch.zeros(3, device=device, dtype=dtype)
        self.sums = torch.zeros(*lead, num_terms, device=device)

        def body() -> None:
            out = terms(self.perm[..., :batch_size], self.eps, self.weights)
            loss = out[..., -1]
            optimizer.zero_grad(set_to_none=True)
            (loss if runs is None else loss.sum()).backward()
            optimizer.step()
            self.sums.add_(out.detach())

        self.graph = StepGraph(body, lambda g: self.refill([g] * (runs or 1)), params, optimizer,
                               capture=capture_available(device))

    def refill(self, generators: Sequence[torch.Generator]) -> None:
        """Each run's random numbers from its own generator, in the eager order (indices, then one
        noise tensor per modality: :func:`~mmalign.fast.forward.draw_step`)."""
        for s, g in enumerate(generators):
            perm = self.perm if self.runs is None else self.perm[s]
            torch.randperm(self.n, generator=g, device=self.device, out=perm)
            for name in self.names:
                eps = self.eps[name] if self.runs is None else self.eps[name][s]
                torch.randn(self.shape, generator=g, device=self.device, dtype=self.dtype, out=eps)

    def start_epoch(self, weights) -> torch.Tensor:
        """Set the epoch's ``(beta, gamma, delta)`` and zero the sums; returns the sums buffer."""
        self.weights.copy_(torch.tensor([weights.beta, weights.gamma, weights.delta], dtype=self.dtype))
        self.sums.zero_()
        return self.sums

    def step(self, generators: Sequence[torch.Generator]) -> None:
        self.refill(generators)
        self.graph.replay()


def capture_available(device: torch.device) -> bool:
    """Whether CUDA graphs can be captured on ``device``."""
    return device.type == "cuda" and torch.cuda.is_available()


@contextlib.contextmanager
def capturable(optimizer: torch.optim.Optimizer, on: bool) -> Iterator[None]:
    """Set ``capturable=True`` on every param group for the duration (``on=False``: do nothing)."""
    if not on:
        yield
        return
    before = [g.get("capturable", False) for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["capturable"] = True
    try:
        yield
    finally:
        for g, flag in zip(optimizer.param_groups, before):
            g["capturable"] = flag


def _snapshot(params: list[torch.Tensor], optimizer: torch.optim.Optimizer):
    values = [p.detach().clone() for p in params]
    state = {p: {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
             for p, s in optimizer.state.items()}
    return values, state


@torch.no_grad()
def _restore(saved, params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    """Put parameters and optimiser state back in place (same storage: the graph will point at it).
    State created by the warm-up (a fresh optimiser) goes back to its initial value, zeros."""
    values, state = saved
    for p, v in zip(params, values):
        p.copy_(v)
        p.grad = None
    for p, s in optimizer.state.items():
        before = state.get(p, {})
        for k, v in s.items():
            if not isinstance(v, torch.Tensor):
                if k in before:
                    s[k] = before[k]
                continue
            if k in before:
                v.copy_(before[k])
            else:
                v.zero_()
