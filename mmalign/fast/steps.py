"""One training step of :func:`~mmalign.fast.train_fast` (one run) or
:func:`~mmalign.fast.train_seeds` (S runs stacked), in two forms with one interface:

* :class:`Steps`: draw the step's random numbers (:func:`~mmalign.fast.forward.draw_step`, per
  run from its own generator), gather the batch, forward, backward, optimiser step;
* :class:`GraphedSteps`: the same step on static buffers, replayed as one CUDA graph where one can
  be captured (:mod:`mmalign.fast.graphs`).

A loop calls ``sums = steps.start_epoch(weights)`` once per epoch and ``steps.step(generators)``
once per step; ``sums`` holds the running sums of the terms (the loss last), ``(T,)`` for one run
and ``(S, T)`` for S.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..engine import LossWeights
from .forward import active_families, draw_step
from .graphs import StepGraph, capture_available

#: Every weighted loss family on: the graph's one pattern (a family in warm-up has weight 0).
ALL_FAMILIES = (True, True, True)

#: ``terms(idx, eps, weights, active)``: the forward pass for batch rows ``idx`` (``(B,)`` or
#: ``(S, B)``) and noise ``eps``, returning the terms with the loss last.
Terms = Callable[[torch.Tensor, dict, object, tuple], torch.Tensor]


class Steps:
    """The plain step. ``runs=None``: one run, one generator; ``runs=S``: S runs, one generator each.
    ``weights_tensor``: pass the warm-up weights as a ``(3,)`` tensor (a compiled step must not
    specialise on their values)."""

    def __init__(self, runs: int | None, n: int, batch_size: int, names: Sequence[str], shape: tuple[int, int],
                 num_terms: int, terms: Terms, optimizer: torch.optim.Optimizer, device: torch.device,
                 dtype: torch.dtype, weights_tensor: bool = False) -> None:
        self.runs, self.n, self.batch_size, self.names, self.shape = runs, n, batch_size, list(names), shape
        self.lead = () if runs is None else (runs,)
        self.num_terms, self.terms, self.optimizer = num_terms, terms, optimizer
        self.device, self.dtype, self.weights_tensor = device, dtype, weights_tensor
        self.sums = torch.zeros(*self.lead, num_terms, device=device)

    def start_epoch(self, weights: LossWeights) -> torch.Tensor:
        self.active = active_families(weights)
        self.weights = self._weights_tensor(weights) if self.weights_tensor else weights
        self.sums = torch.zeros(*self.lead, self.num_terms, device=self.device)
        return self.sums

    def step(self, generators: Sequence[torch.Generator]) -> None:
        draws = [draw_step(self.n, self.batch_size, self.names, self.shape, g, self.device, self.dtype)
                 for g in generators]
        if self.runs is None:
            idx, eps = draws[0]
        else:
            idx = torch.stack([i for i, _ in draws])
            eps = {name: torch.stack([e[name] for _, e in draws]) for name in self.names}
        self._update(self.terms(idx, eps, self.weights, self.active))

    def _update(self, out: torch.Tensor) -> None:
        """Back-propagate the loss (summed over runs), step, and add the detached terms to the sums."""
        loss = out[..., -1]
        self.optimizer.zero_grad(set_to_none=True)
        (loss if self.runs is None else loss.sum()).backward()
        self.optimizer.step()
        self.sums.add_(out.detach())

    def _weights_tensor(self, weights: LossWeights) -> torch.Tensor:
        return torch.tensor([weights.beta, weights.gamma, weights.delta], device=self.device, dtype=self.dtype)


class GraphedSteps(Steps):
    """The step on static buffers (``perm``, ``eps``, ``weights``, ``sums``), captured once as a CUDA
    graph and replayed; every loss family runs with its weight from the ``weights`` tensor. Without
    CUDA the same static-buffer step runs uncaptured (for the tests)."""

    def __init__(self, runs: int | None, n: int, batch_size: int, names: Sequence[str], shape: tuple[int, int],
                 num_terms: int, terms: Terms, optimizer: torch.optim.Optimizer, device: torch.device,
                 dtype: torch.dtype, params: list[torch.Tensor]) -> None:
        super().__init__(runs, n, batch_size, names, shape, num_terms, terms, optimizer, device, dtype)
        self.perm = torch.empty(*self.lead, n, dtype=torch.long, device=device)
        self.eps = {name: torch.empty(*self.lead, *shape, device=device, dtype=dtype) for name in self.names}
        self.weights = torch.zeros(3, device=device, dtype=dtype)

        def body() -> None:
            self._update(terms(self.perm[..., :batch_size], self.eps, self.weights, ALL_FAMILIES))

        self.graph = StepGraph(body, lambda g: self.refill([g] * (runs or 1)), params, optimizer,
                               capture=capture_available(device))

    def refill(self, generators: Sequence[torch.Generator]) -> None:
        """Each run's random numbers from its own generator, drawn as :func:`draw_step` draws them
        (indices, then one noise tensor per modality), written into the static buffers."""
        for s, g in enumerate(generators):
            perm = self.perm if self.runs is None else self.perm[s]
            torch.randperm(self.n, generator=g, device=self.device, out=perm)
            for name in self.names:
                eps = self.eps[name] if self.runs is None else self.eps[name][s]
                torch.randn(self.shape, generator=g, device=self.device, dtype=self.dtype, out=eps)

    def start_epoch(self, weights: LossWeights) -> torch.Tensor:
        self.weights.copy_(self._weights_tensor(weights))
        self.sums.zero_()
        return self.sums

    def step(self, generators: Sequence[torch.Generator]) -> None:
        self.refill(generators)
        self.graph.replay()
