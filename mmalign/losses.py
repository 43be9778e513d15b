"""Per-sample loss functions and the sampling formulas, each written once.

Conventions: a Gaussian posterior is ``(mu, logvar)`` with variance ``exp(logvar)``. Functions take
``(B, d)`` tensors (or any leading dimensions, where stated) and return one value per sample, so
masks and reductions stay outside.

* ``cada2019`` reparameterisation (the reference code): ``z = mu + exp(logvar) * eps`` with one
  standard-normal scalar ``eps`` per sample, shared across latent dimensions.
* ``standard``: ``z = mu + exp(logvar / 2) * eps`` with independent noise per dimension.

The noise is drawn apart from the formula (`draw_noise`, then `apply_noise`): the
training step draws it outside the forward pass, so the forward can be compiled or captured as a
CUDA graph while consuming the generator exactly as the reference code's order does.

The KL term and the 2-Wasserstein distance are the same in both modes (std ``exp(logvar/2)``,
which is the reference code's ``sqrt(exp(logvar))``).
"""

from __future__ import annotations

from typing import Literal

import torch

Reparameterization = Literal["cada2019", "standard"]
REPARAMETERIZATIONS: tuple[str, ...] = ("cada2019", "standard")


def noise_shape(mode: Reparameterization, batch_size: int, latent_size: int) -> tuple[int, int]:
    """Shape of one modality's noise for ``batch_size`` samples: ``(B, 1)`` (cada2019) or ``(B, latent)``."""
    if mode == "cada2019":
        return (batch_size, 1)
    if mode == "standard":
        return (batch_size, latent_size)
    raise ValueError(f"unknown reparameterization {mode!r}; expected one of {REPARAMETERIZATIONS}")


def draw_noise(mode: Reparameterization, batch_size: int, latent_size: int, generator: torch.Generator | None,
               device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One modality's standard-normal noise, as the reference code draws it (one ``randn`` call)."""
    return torch.randn(noise_shape(mode, batch_size, latent_size), generator=generator, device=device, dtype=dtype)


def apply_noise(mu: torch.Tensor, logvar: torch.Tensor, mode: Reparameterization, eps: torch.Tensor) -> torch.Tensor:
    """A posterior sample from given noise ``eps`` (shape `noise_shape`, any leading dims)."""
    if mode == "cada2019":
        return mu + torch.exp(logvar) * eps
    if mode == "standard":
        return mu + torch.exp(0.5 * logvar) * eps
    raise ValueError(f"unknown reparameterization {mode!r}; expected one of {REPARAMETERIZATIONS}")


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, mode: Reparameterization, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample ``z`` from ``(B, k)`` posteriors in the given mode (`draw_noise` + `apply_noise`)."""
    eps = draw_noise(mode, mu.shape[0], mu.shape[1], generator, mu.device, mu.dtype)
    return apply_noise(mu, logvar, mode, eps)


def l1_per_sample(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_d |x - x_hat|`` per sample (CADA's ``L1Loss(size_average=False)`` before the batch sum)."""
    return (reconstruction - target).abs().sum(dim=-1)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per sample = ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)


def wasserstein2(mu_a: torch.Tensor, logvar_a: torch.Tensor, mu_b: torch.Tensor, logvar_b: torch.Tensor) -> torch.Tensor:
    """2-Wasserstein distance between diagonal Gaussians, per sample:
    ``sqrt(||mu_a - mu_b||^2 + ||sigma_a - sigma_b||^2)`` with ``sigma = exp(logvar / 2)``."""
    sigma_a, sigma_b = torch.exp(0.5 * logvar_a), torch.exp(0.5 * logvar_b)
    return torch.sqrt((mu_a - mu_b).pow(2).sum(dim=-1) + (sigma_a - sigma_b).pow(2).sum(dim=-1))


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, valid: torch.Tensor | None = None,
             shared: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE per sample for ``(..., B, k)`` embeddings whose row ``i`` of ``a`` and of
    ``b`` describe the same sample (the positive pair); every other row of the batch is a negative.

    Cosine similarity over ``temperature``; per sample ``(CE(a_i -> b) + CE(b_i -> a)) / 2``.
    ``valid`` (``(..., B)``, 1 = present) keeps rows without both modalities out of everyone's
    negatives; their own values are finite and meant to be masked by the caller. ``shared``
    (``(..., B, B)`` bool, symmetric) marks pairs of rows of one class: off the diagonal, those are
    not negatives of each other (class-level InfoNCE).
    """
    a = torch.nn.functional.normalize(a, dim=-1)
    b = torch.nn.functional.normalize(b, dim=-1)
    logits = a @ b.transpose(-1, -2) / temperature
    if valid is not None:  # a large finite negative, not -inf: a fully masked row must stay finite
        absent = valid[..., None, :] <= 0
        logits = logits.masked_fill(absent, -1e4)
        logits_t = logits.transpose(-1, -2).masked_fill(absent, -1e4)
    else:
        logits_t = logits.transpose(-1, -2)
    if shared is not None:
        eye = torch.eye(shared.shape[-1], dtype=torch.bool, device=shared.device)
        same = shared & ~eye
        logits, logits_t = logits.masked_fill(same, -1e4), logits_t.masked_fill(same, -1e4)
    positive = torch.diagonal(logits, dim1=-2, dim2=-1)
    return 0.5 * (torch.logsumexp(logits, dim=-1) + torch.logsumexp(logits_t, dim=-1)) - positive
