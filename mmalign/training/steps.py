"""How one training step executes: the strategies the loop is handed.

A step serves S runs at once (S = 1 for one run): every run draws its random numbers from its own
generator in the reference code's order (``randperm``, then one noise tensor per modality), the
batch rows are gathered, `compute_terms` gives the ``(S, T)`` terms (loss
last), the summed loss is back-propagated and the optimiser steps.

* `PlainStep`: exactly that, every step from Python.
* `GraphedStep`: the same step on static buffers (indices, noise, the epoch's weights, the
  running sums), captured once as a CUDA graph and replayed (`mmalign.training.graphs`);
  every family runs with its weight from a tensor, 0 during its warm-up. Without CUDA the
  static-buffer step runs uncaptured (the tests check it against the plain step).
* `DistributedStep`: one run on several processes
  (torchrun, DDP): every rank draws the whole global batch as `PlainStep.draw` does and
  trains its share of the rows.

The loop calls ``sums = step.start_epoch(weights)`` once per epoch and ``step.step(generators)``
once per step; ``sums`` is ``(S, T)``.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import torch

from ..losses import draw_noise, noise_shape
from ..schedule import LossWeights
from .graphs import StepGraph, capture_available

#: ``terms(idx (S, B), eps {name: (S, ...)}, weights, active) -> (S, T)``: the forward of one step.
Terms = Callable[[torch.Tensor, dict, object, object], torch.Tensor]


class Step(Protocol):
    def start_epoch(self, weights: LossWeights) -> torch.Tensor: ...

    def step(self, generators: Sequence[torch.Generator]) -> None: ...


class PlainStep:
    """The step from Python. ``weights_as_tensor``: hand the epoch's weights to ``terms`` as a
    tensor with an explicit set of active families (a compiled forward must not specialise on the
    values, only on which families are on)."""

    def __init__(self, runs: int, num_samples: int, batch_size: int, names: Sequence[str], reparameterization: str,
                 latent_size: int, families: Sequence[str], num_terms: int, terms: Terms,
                 optimizer: torch.optim.Optimizer, device: torch.device, dtype: torch.dtype,
                 weights_as_tensor: bool = False) -> None:
        self.runs, self.n, self.batch_size, self.names = runs, num_samples, batch_size, list(names)
        self.mode, self.latent_size, self.families = reparameterization, latent_size, list(families)
        self.shape = noise_shape(reparameterization, batch_size, latent_size)
        self.num_terms, self.terms, self.optimizer = num_terms, terms, optimizer
        self.device, self.dtype, self.weights_as_tensor = device, dtype, weights_as_tensor
        self.sums = torch.zeros(runs, num_terms, device=device)

    def start_epoch(self, weights: LossWeights) -> torch.Tensor:
        self.active = weights.active(self.families)
        self.weights = weights.tensor(self.families, self.device, self.dtype) if self.weights_as_tensor else weights
        self.sums = torch.zeros(self.runs, self.num_terms, device=self.device)
        return self.sums

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One run's random numbers for one step: the batch indices, then each modality's noise."""
        idx = torch.randperm(self.n, generator=generator, device=self.device)[: self.batch_size]
        eps = {n: draw_noise(self.mode, self.batch_size, self.latent_size, generator, self.device, self.dtype)
               for n in self.names}
        return idx, eps

    def step(self, generators: Sequence[torch.Generator]) -> None:
        draws = [self.draw(g) for g in generators]
        idx = torch.stack([i for i, _ in draws])
        eps = {n: torch.stack([e[n] for _, e in draws]) for n in self.names}
        self._update(self.terms(idx, eps, self.weights, self.active))

    def _update(self, out: torch.Tensor) -> None:
        """Back-propagate the loss (summed over runs), step, and add the detached terms to the sums."""
        self.optimizer.zero_grad(set_to_none=True)
        out[:, -1].sum().backward()
        self.optimizer.step()
        self.sums.add_(out.detach())


class GraphedStep(PlainStep):
    """The step on static buffers (``perm``, ``eps``, ``weights``, ``sums``), captured once as a
    CUDA graph on ``capture`` devices and replayed; elsewhere the same step runs uncaptured."""

    def __init__(self, runs: int, num_samples: int, batch_size: int, names: Sequence[str], reparameterization: str,
                 latent_size: int, families: Sequence[str], num_terms: int, terms: Terms,
                 optimizer: torch.optim.Optimizer, device: torch.device, dtype: torch.dtype,
                 params: list[torch.Tensor]) -> None:
        super().__init__(runs, num_samples, batch_size, names, reparameterization, latent_size, families, num_terms,
                         terms, optimizer, device, dtype)
        self.perm = torch.empty(runs, num_samples, dtype=torch.long, device=device)
        self.eps = {n: torch.empty(runs, *self.shape, device=device, dtype=dtype) for n in self.names}
        self.weights = torch.zeros(len(self.families), device=device, dtype=dtype)

        def body() -> None:
            self._update(terms(self.perm[:, :batch_size], self.eps, self.weights, None))

        self.graph = StepGraph(body, lambda g: self.refill([g] * runs), params, optimizer,
                               capture=capture_available(device))

    def refill(self, generators: Sequence[torch.Generator]) -> None:
        """Each run's random numbers from its own generator, drawn as `PlainStep.draw` draws
        them (indices, then one noise tensor per modality), written into the static buffers."""
        for s, g in enumerate(generators):
            torch.randperm(self.n, generator=g, device=self.device, out=self.perm[s])
            for n in self.names:
                torch.randn(self.shape, generator=g, device=self.device, dtype=self.dtype, out=self.eps[n][s])

    def start_epoch(self, weights: LossWeights) -> torch.Tensor:
        self.weights.copy_(weights.tensor(self.families, self.device, self.dtype))
        self.sums.zero_()
        return self.sums

    def step(self, generators: Sequence[torch.Generator]) -> None:
        self.refill(generators)
        self.graph.replay()
