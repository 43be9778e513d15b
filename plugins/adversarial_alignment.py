"""Adversarial distribution alignment: a critic between every pair of modalities' latents, with a
gradient penalty.

After HSVA (S. Chen, G. Xie, Y. Liu, Q. Peng, B. Sun, H. Li, X. You, L. Shao, "HSVA: Hierarchical
Semantic-Visual Adaptation for Zero-Shot Learning", NeurIPS 2021: adversarial distribution
adaptation of the two modalities' latent spaces, in a fork of the CADA-VAE code) and WGAN-GP
(I. Gulrajani, F. Ahmed, M. Arjovsky, V. Dumoulin, A. Courville, "Improved Training of Wasserstein
GANs", NeurIPS 2017). For a pair ``a|b`` a critic ``f`` (``Linear(latent, hidden) -> LeakyReLU ->
Linear(hidden, 1)``, one per pair) estimates the Wasserstein-1 distance of the two latent
distributions. Per sample ``i`` (sampled latents ``z``):

```python
VAE    (per_sample): f(z_a,i) - f(z_b,i)
critic (critic):     f(z_b,i) - f(z_a,i) + gp_weight * (|grad f(u_i)| - 1)^2,
                     u_i = t_i z_a,i + (1 - t_i) z_b,i,  t_i = (i + 0.5) / B
```

The points ``u`` lie on a fixed grid of the segments (no random numbers: the training's random
stream stays the plain run's, and a resumed run is exact). The critic is adversarial: trained by
its own Adam (``critic_lr``, ``critic_betas``) ``critic_steps`` times before every VAE step
(`mmalign.training.adversarial.AdversarialStep`), left out of the VAE's optimiser, saved
with the model and its optimiser state with the training state. Registered through
``register_losses``; weight 0 unless a recipe weighs it (``registry/recipes/cada_adversarial.toml``).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import nn

import mmalign
from mmalign.terms import LossTerm, ModuleSpec, TermInputs, unordered_pairs

FAMILY = "adversarial_align"


class Options(BaseModel):
    """Options of ``adversarial_align`` (recipe table ``[loss_options.adversarial_align]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hidden: PositiveInt = Field(64, description="Hidden width of each critic.")
    critic_steps: PositiveInt = Field(5, description="Critic updates per VAE step.")
    critic_lr: PositiveFloat = Field(1e-4, description="Adam learning rate of the critics.")
    critic_betas: tuple[float, float] = Field((0.5, 0.9), description="Adam betas of the critics.")
    gp_weight: NonNegativeFloat = Field(10.0, description="Weight of the gradient penalty.")


def _pair(a: str, b: str) -> str:
    return "|".join(sorted((a, b))).replace(".", "_")


def build(spec: ModuleSpec) -> nn.Module:
    width = spec.options.hidden
    return nn.ModuleDict({_pair(a, b): nn.Sequential(nn.Linear(spec.latent_size, width), nn.LeakyReLU(0.2),
                                                     nn.Linear(width, 1))
                          for a, b in unordered_pairs(spec.names)})


def _critic(inputs: TermInputs, a: str, b: str) -> nn.Module:
    return inputs.module(FAMILY)[_pair(a, b)]


def generator_value(inputs: TermInputs, a: str, b: str) -> torch.Tensor:
    f = _critic(inputs, a, b)
    return f(inputs.latents[a])[..., 0] - f(inputs.latents[b])[..., 0]


def critic_value(inputs: TermInputs, a: str, b: str) -> torch.Tensor:
    f = _critic(inputs, a, b)
    za, zb = inputs.latents[a].detach(), inputs.latents[b].detach()
    value = f(zb)[..., 0] - f(za)[..., 0]
    gp_weight = inputs.options(FAMILY).gp_weight
    if gp_weight > 0:
        t = (torch.arange(za.shape[-2], device=za.device, dtype=za.dtype) + 0.5) / za.shape[-2]
        u = (t[:, None] * za + (1 - t[:, None]) * zb).requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(f(u).sum(), u, create_graph=True)
        value = value + gp_weight * (grad.norm(dim=-1) - 1).pow(2)
    return value


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm(FAMILY, "unordered", generator_value, weight=0.0, options=Options, build=build,
                      critic=critic_value,
                      description="WGAN-GP critic between each pair's latents (HSVA, NeurIPS 2021; WGAN-GP, 2017)"))
