"""The adversarial step strategy: critic updates before every VAE step, inside the one loop.

An adversarial loss family (``LossTerm.critic``, see `mmalign.terms`) owns a module (a critic)
that plays against the VAE: the VAE minimises the family's ``per_sample`` value (which reads the
critic), the critic minimises its own ``critic`` objective with its own optimiser.
`AdversarialStep` is `PlainStep` with, before the VAE update,
``critic_steps`` updates of each adversarial family's critic on the same batch and noise (no
further random numbers are drawn, so the generator's stream is the one of a plain run). A family
whose weight is 0 in the epoch trains no critic in that epoch. The critics' optimiser states are
part of the training state (`mmalign.resume`), so a resumed run is exact.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from ..errors import ConfigError
from .steps import PlainStep

#: ``critic(family, idx (S, B), eps {name: (S, ...)}) -> (S,)``: a family's critic objective.
Critic = Callable[[str, torch.Tensor, dict], torch.Tensor]


def critic_optimizers(model) -> dict[str, torch.optim.Optimizer]:
    """One Adam per adversarial family of ``model`` over its module's parameters, with the family's
    ``options.critic_lr`` and ``options.critic_betas`` (defaults 1e-4 and (0.5, 0.9) when the
    options do not name them)."""
    out: dict[str, torch.optim.Optimizer] = {}
    for term in model.adversaries:
        options = model.loss_options.get(term.family)
        lr = float(getattr(options, "critic_lr", 1e-4))
        betas = tuple(getattr(options, "critic_betas", (0.5, 0.9)))
        params = list(model.loss_modules[term.family].parameters())
        if not params:
            raise ConfigError(f"loss family {term.family!r}: an adversarial family's module needs parameters")
        out[term.family] = torch.optim.Adam(params, lr=lr, betas=betas)
    return out


def critic_steps(model) -> dict[str, int]:
    """Critic updates per VAE step of each adversarial family (``options.critic_steps``, default 1)."""
    return {t.family: int(getattr(model.loss_options.get(t.family), "critic_steps", 1)) for t in model.adversaries}


class AdversarialStep(PlainStep):
    """A plain step preceded by each active adversarial family's critic updates (see the module
    docstring). ``optimizers`` and ``steps`` are keyed by family."""

    def __init__(self, *args, critic: Critic, optimizers: Mapping[str, torch.optim.Optimizer],
                 steps: Mapping[str, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.critic, self.optimizers, self.critic_counts = critic, dict(optimizers), dict(steps)

    def step(self, generators: Sequence[torch.Generator]) -> None:
        draws = [self.draw(g) for g in generators]
        idx = torch.stack([i for i, _ in draws])
        eps = {n: torch.stack([e[n] for _, e in draws]) for n in self.names}
        for family, optimizer in self.optimizers.items():
            if family not in self.active:
                continue
            for _ in range(self.critic_counts[family]):
                optimizer.zero_grad(set_to_none=True)
                self.critic(family, idx, eps).sum().backward()
                optimizer.step()
        self._update(self.terms(idx, eps, self.weights, self.active))
