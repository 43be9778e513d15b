"""The training step as one CUDA graph.

One CADA-VAE step is a few hundred small kernels. On a GPU, launching them one by one from Python
takes longer than running them, so the step is captured once as a CUDA graph and replayed: one
launch per step. What makes that possible without changing the training:

* the step reads its random numbers from static buffers that the loop refills before each replay
  with the same generator calls, in the same order, as the eager path (``randperm`` then one
  ``randn`` per modality, written with ``out=``), so the random stream is unchanged;
* every loss family is computed, weighted by a static tensor of the families' weights that the loop
  sets each epoch: a family still in its warm-up has weight 0, which adds exactly 0 to the loss and
  the gradients, so one graph serves every epoch;
* the gradients, Adam's update (``fused=True, capturable=True``) and the running sums of the logged
  terms are inside the graph.

Capturing needs a few eager warm-up steps first (cuBLAS and the allocator set themselves up on the
first calls). Those steps run on random numbers from a scratch generator, and the parameters and
optimiser state are put back afterwards, so the run starts exactly where it would have.

On a CPU (``capture=False``) `StepGraph` simply calls the step: the static-buffer loop runs
as is, which the tests use to check it against the plain loop. The loops themselves are in
`mmalign.training.steps`; `capture_after` also serves the classifier's epoch graph.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch


class StepGraph:
    """``body`` (a step that reads and writes only static tensors) as a replayable CUDA graph.

    ``refill(generator)`` writes a step's random numbers into the static buffers; it is called with a
    scratch generator for the warm-up steps. ``params`` and ``optimizer`` are restored after the
    warm-up. With ``capture=False`` `replay` just calls ``body``.
    """

    def __init__(self, body: Callable[[], None], refill: Callable[[torch.Generator], None],
                 params: list[torch.Tensor], optimizer: torch.optim.Optimizer, capture: bool,
                 warmup_steps: int = 3) -> None:
        self.body = body
        self.graph: torch.cuda.CUDAGraph | None = None
        if not capture:
            return
        saved = _snapshot(params, optimizer)
        scratch = torch.Generator(device=params[0].device).manual_seed(0)

        def warmup() -> None:
            for _ in range(warmup_steps):
                refill(scratch)
                body()
            _restore(saved, params, optimizer)

        self.graph = capture_after(warmup, body, params[0].device)

    def replay(self) -> None:
        if self.graph is None:
            self.body()
        else:
            self.graph.replay()


def capture_after(warmup: Callable[[], None], body: Callable[[], None], device: torch.device) -> torch.cuda.CUDAGraph:
    """Run ``warmup`` on a side stream (torch asks for eager runs of the work before a capture:
    cuBLAS and the allocator set themselves up on first use), then capture ``body`` as a graph."""
    with torch.cuda.device(device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            warmup()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()
    return graph


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
