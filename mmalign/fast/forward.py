"""The loss of :class:`~mmalign.engine.AlignedVAE` with the noise drawn *outside* the forward pass,
for one run or for S runs at once.

:func:`batched_terms` computes what ``AlignedVAE.forward`` computes, term for term, in the same
order and with the same loss functions, for inputs with a leading run dimension ``S`` (``(S, B, d)``
rows, ``(S, B)`` masks, ``(S, B, k)`` noise). The networks are reached through ``encode`` and
``decode`` callables, so the same code serves the model's own modules (:func:`noisy_terms`, S = 1)
and stacked weights (:mod:`mmalign.fast.stacked`). Per-sample loss functions (the modalities'
``reconstruction_loss``, the KL, the 2-Wasserstein distance) are called on ``(S * B, d)`` views, so
any plugin's loss works unchanged.

Drawing the noise outside keeps random number generation out of the compute (the step can be
compiled) while consuming the generator in the eager order: per step ``randperm`` first, then one
noise draw per modality in ``model.names`` order (:func:`draw_step`).

Two deliberate differences from the eager forward, both invisible in fp32:

* encoder and decoder outputs are cast to the noise's dtype (fp32) before any loss arithmetic, so
  under bf16 autocast only the matrix products run in bf16 and every loss term is fp32;
* a term with weight exactly zero is left out of ``loss`` (as ``AlignedVAE.total`` does) and, for
  the cross-reconstruction terms, their decoder passes also stay out of the autograd graph, so the
  backward pass skips them during the cross warm-up (their values are still computed and returned).
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from ..engine import (
    AlignedVAE, LossWeights, align_term, cross_term, kl_term, ordered_pairs, recon_term, unordered_pairs,
)
from ..losses import kl_to_standard_normal, wasserstein2

#: ``encode(name, x (S, B, d)) -> (mu, logvar)``, each ``(S, B, latent)``.
Encode = Callable[[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: ``decode(name, z (S, R, latent)) -> (S, R, d)``.
Decode = Callable[[str, torch.Tensor], torch.Tensor]


def noise_shape(model: AlignedVAE, batch_size: int) -> tuple[int, int]:
    """Shape of one modality's noise for one step: ``(B, 1)`` (cada2019) or ``(B, latent)``."""
    if model.reparameterization == "cada2019":
        return (batch_size, 1)
    if model.reparameterization == "standard":
        return (batch_size, model.latent_size)
    raise ValueError(f"unknown reparameterization {model.reparameterization!r}")


def draw_step(
    n: int, batch_size: int, names: list[str], shape: tuple[int, int], generator: torch.Generator,
    device: torch.device, dtype: torch.dtype,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step's random numbers, in the eager path's order: the batch indices, then each modality's
    noise (``torch.randn(shape)``, as :func:`mmalign.losses.reparameterize` draws it)."""
    idx = torch.randperm(n, generator=generator, device=device)[:batch_size]
    eps = {name: torch.randn(shape, generator=generator, device=device, dtype=dtype) for name in names}
    return idx, eps


def apply_noise(mu: torch.Tensor, logvar: torch.Tensor, mode: str, eps: torch.Tensor) -> torch.Tensor:
    """``reparameterize`` with given noise (the formulas of :func:`mmalign.losses.reparameterize`)."""
    if mode == "cada2019":
        return mu + torch.exp(logvar) * eps
    if mode == "standard":
        return mu + torch.exp(0.5 * logvar) * eps
    raise ValueError(f"unknown reparameterization {mode!r}")


def active_families(weights: LossWeights) -> tuple[bool, bool, bool]:
    """Which weighted families enter the loss: ``(kl, cross, align)`` (recon always does)."""
    return weights.beta != 0.0, weights.gamma != 0.0, weights.delta != 0.0


def _per_sample(fn: Callable, *tensors: torch.Tensor) -> torch.Tensor:
    """``fn`` of ``(B, d)`` tensors applied to ``(S, B, d)`` ones through ``(S * B, d)`` views -> ``(S, B)``."""
    s, b = tensors[0].shape[:2]
    return fn(*(t.reshape(s * b, t.shape[-1]) for t in tensors)).view(s, b)


def _reduce(model: AlignedVAE, per_sample: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``AlignedVAE._reduce`` per run: ``(S, B) -> (S,)``."""
    if mask is not None:  # where, not a product: a masked row's inf or NaN must not leak
        per_sample = torch.where(mask > 0, per_sample, torch.zeros_like(per_sample))
    total = per_sample.sum(dim=1)
    if model.reduction == "mean":
        count = mask.sum(dim=1).clamp_min(1.0) if mask is not None else per_sample.shape[1]
        total = total / count
    return total


def batched_terms(
    model: AlignedVAE,
    encode: Encode,
    decode: Decode,
    batch: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    eps: Mapping[str, torch.Tensor],
    weights: LossWeights | torch.Tensor,
    active: tuple[bool, bool, bool] | None = None,
) -> torch.Tensor:
    """Every term of ``model.forward`` for S runs, ``(S, T)`` in ``model.term_names()`` order (``loss`` last).

    ``model`` supplies the modality names, losses and settings (not the weights: those are behind
    ``encode``/``decode``). ``weights`` is a :class:`LossWeights` or a ``(3,)`` tensor ``(beta, gamma,
    delta)`` (a tensor keeps a compiled function from specialising on the epoch's values); ``active``
    says which weighted families are non-zero (default: read from a ``LossWeights``).
    """
    names = model.names
    if active is None:
        if not isinstance(weights, LossWeights):
            raise ValueError("pass active=(kl, cross, align) when weights is a tensor")
        active = active_families(weights)
    kl_on, cross_on, align_on = active
    if isinstance(weights, LossWeights):
        beta, gamma, delta = weights.beta, weights.gamma, weights.delta
    else:
        beta, gamma, delta = weights[0], weights[1], weights[2]
    dtype = eps[names[0]].dtype
    masks = {n: m.to(dtype) for n, m in masks.items()}

    def both(a: str, b: str) -> torch.Tensor | None:
        ma, mb = masks.get(a), masks.get(b)
        if ma is None or mb is None:
            return ma if mb is None else mb
        return ma * mb

    posteriors = {}
    for n in names:
        mu, logvar = encode(n, batch[n])
        posteriors[n] = (mu.to(dtype), logvar.to(dtype))
    latents = {n: apply_noise(mu, lv, model.reparameterization, eps[n]) for n, (mu, lv) in posteriors.items()}
    size = batch[names[0]].shape[1]
    decoded: dict[str, dict[str, torch.Tensor]] = {}
    if cross_on:  # each decoder decodes every modality's latent in one call, as the engine does
        z_all = torch.cat([latents[n] for n in names], dim=1)
        for j in names:
            decoded[j] = dict(zip(names, decode(j, z_all).to(dtype).split(size, dim=1)))
    else:  # cross terms weigh 0: decode them outside the graph (values for the log only)
        for j in names:
            decoded[j] = {j: decode(j, latents[j]).to(dtype)}
            others = [i for i in names if i != j]
            with torch.no_grad():
                z_others = torch.cat([latents[i].detach() for i in others], dim=1)
                decoded[j].update(zip(others, decode(j, z_others).to(dtype).split(size, dim=1)))

    values: dict[str, torch.Tensor] = {}
    for n in names:
        loss_fn = model.modalities[n].reconstruction_loss
        values[recon_term(n)] = _reduce(model, _per_sample(loss_fn, decoded[n][n], batch[n]), masks.get(n))
    for n in names:
        values[kl_term(n)] = _reduce(model, _per_sample(kl_to_standard_normal, *posteriors[n]), masks.get(n))
    for i, j in ordered_pairs(names):
        loss_fn = model.modalities[j].reconstruction_loss
        values[cross_term(i, j)] = _reduce(model, _per_sample(loss_fn, decoded[j][i], batch[j]), both(i, j))
    for a, b in unordered_pairs(names):
        per = _per_sample(wasserstein2, *posteriors[a], *posteriors[b])
        values[align_term(a, b)] = _reduce(model, per, both(a, b))

    scale = {"recon": 1.0, "kl": beta, "cross": gamma, "align": delta}
    on = {"recon": True, "kl": kl_on, "cross": cross_on, "align": align_on}
    loss = None
    for name, value in values.items():  # AlignedVAE.total, with its zero test made static
        family = name.split("/", 1)[0]
        pair = model.pair_weights.get(name, 1.0)
        if not on[family] or pair == 0.0:
            continue
        w = scale[family] * pair
        loss = value * w if loss is None else loss + value * w
    if loss is None:
        loss = torch.zeros_like(values[recon_term(names[0])])
    # The logged terms leave the graph: stacked as they are, each would get a zero gradient back from
    # the stack (a zeros and an add kernel per term on every step, a fifth of a GPU step's kernels).
    return torch.stack([*(v.detach() for v in values.values()), loss], dim=1)


def noisy_terms(
    model: AlignedVAE,
    batch: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    eps: Mapping[str, torch.Tensor],
    weights: LossWeights | torch.Tensor,
    active: tuple[bool, bool, bool] | None = None,
) -> torch.Tensor:
    """``model.forward``'s terms as one ``(T,)`` vector (``loss`` last), with given noise ``eps[name]``
    (shape :func:`noise_shape`), through the model's own modules. ``batch`` rows are ``(B, d)``."""

    # (1, ...) views in and out; reshape rather than [0], whose backward is a zeros and a copy kernel
    def encode(name: str, x: torch.Tensor):
        mu, logvar = model.encoders[name](x.reshape(x.shape[1:]))
        return mu[None], logvar[None]

    def decode(name: str, z: torch.Tensor) -> torch.Tensor:
        return model.decoders[name](z.reshape(z.shape[1:]))[None]

    one = lambda d: {k: v[None] for k, v in d.items()}  # noqa: E731
    return batched_terms(model, encode, decode, one(batch), one(masks), one(eps), weights, active).reshape(-1)
