"""The loss terms of CADA-VAE, per sample (shape ``(B,)``) so masks and reductions stay outside.

Conventions: a Gaussian posterior is ``(mu, logvar)`` with variance ``exp(logvar)``.

* ``cada2019`` reparameterisation (the reference code): ``z = mu + exp(logvar) * eps`` with one
  standard-normal scalar ``eps`` per sample, shared across latent dimensions.
* ``standard``: ``z = mu + exp(logvar / 2) * eps`` with independent noise per dimension.

The KL term and the 2-Wasserstein distance are the same in both modes (std ``exp(logvar/2)``,
which is the reference code's ``sqrt(exp(logvar))``).
"""

from __future__ import annotations

from typing import Literal

import torch

Reparameterization = Literal["cada2019", "standard"]


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, mode: Reparameterization, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample ``z`` from the posterior in the given mode."""
    if mode == "cada2019":
        eps = torch.randn((mu.shape[0], 1), generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(logvar) * eps
    if mode == "standard":
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps
    raise ValueError(f"unknown reparameterization {mode!r}")


def l1_per_sample(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_d |x - x_hat|`` per sample (CADA's ``L1Loss(size_average=False)`` before the batch sum)."""
    return (reconstruction - target).abs().sum(dim=1)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per sample = ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def wasserstein2(mu_a: torch.Tensor, logvar_a: torch.Tensor, mu_b: torch.Tensor, logvar_b: torch.Tensor) -> torch.Tensor:
    """2-Wasserstein distance between diagonal Gaussians, per sample:
    ``sqrt(||mu_a - mu_b||^2 + ||sigma_a - sigma_b||^2)`` with ``sigma = exp(logvar / 2)``."""
    sigma_a, sigma_b = torch.exp(0.5 * logvar_a), torch.exp(0.5 * logvar_b)
    return torch.sqrt((mu_a - mu_b).pow(2).sum(dim=1) + (sigma_a - sigma_b).pow(2).sum(dim=1))


def ramp(epoch: float, start: float, end: float, factor: float) -> float:
    """Linear warm-up weight of the reference code: ``clip((e - start)/(end - start) * factor, 0, factor)``."""
    value = (epoch - start) / (end - start) * factor
    return min(max(value, 0.0), factor)
