"""The M-modality aligned VAE: encoders and decoders keyed by modality name, and the loss.

For modalities ``i, j`` in the experiment, one batch's loss is::

    sum_i [recon_i + beta * KL_i] + gamma * sum_{i != j} cross_{i->j} + delta * sum_{i<j} W_ij

Every term is returned unweighted under a stable name (``recon/img``, ``kl/img``,
``cross/att->img`` = decode ``img`` from the latent of ``att``, ``align/att|img``), reduced over the
batch (``sum`` as in CADA-VAE, or ``mean``) after masking: a sample lacking modality ``m`` drops
only the terms that involve ``m``. ``loss`` is the weighted total.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping, Sequence

import torch
from torch import nn

from .losses import Reparameterization, kl_to_standard_normal, reparameterize, wasserstein2
from .modality import Modality


def ordered_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every ``(source, target)`` with ``source != target``: the cross-reconstruction pairs."""
    return [(i, j) for i in names for j in names if i != j]


def unordered_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every ``{a, b}`` once, each pair sorted by name: the alignment pairs."""
    return list(combinations(sorted(names), 2))


def recon_term(name: str) -> str:
    return f"recon/{name}"


def kl_term(name: str) -> str:
    return f"kl/{name}"


def cross_term(source: str, target: str) -> str:
    return f"cross/{source}->{target}"


def align_term(a: str, b: str) -> str:
    a, b = sorted((a, b))
    return f"align/{a}|{b}"


@dataclass(frozen=True)
class LossWeights:
    """Weights of the KL (beta), cross-reconstruction (gamma) and alignment (delta) terms."""

    beta: float
    gamma: float
    delta: float


class AlignedVAE(nn.Module):
    """One VAE per modality, trained jointly with cross-reconstruction and distribution alignment."""

    def __init__(
        self,
        modalities: Mapping[str, Modality],
        dims: Mapping[str, int],
        latent_size: int = 64,
        reparameterization: Reparameterization = "cada2019",
        reduction: str = "sum",
        pair_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.names = list(modalities)
        self.modalities = dict(modalities)
        self.latent_size = latent_size
        self.reparameterization = reparameterization
        self.reduction = reduction
        self.pair_weights = dict(pair_weights or {})
        self.encoders = nn.ModuleDict({n: m.build_encoder(dims[n], latent_size) for n, m in modalities.items()})
        self.decoders = nn.ModuleDict({n: m.build_decoder(latent_size, dims[n]) for n, m in modalities.items()})

    def term_names(self) -> list[str]:
        """Every term :meth:`forward` returns, in order (``loss`` last)."""
        names = [recon_term(n) for n in self.names] + [kl_term(n) for n in self.names]
        names += [cross_term(i, j) for i, j in ordered_pairs(self.names)]
        names += [align_term(a, b) for a, b in unordered_pairs(self.names)]
        return names + ["loss"]

    def encode(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoders[name](x)

    def _reduce(self, per_sample: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None:  # where, not a product: a masked row's inf or NaN must not leak
            per_sample = torch.where(mask > 0, per_sample, torch.zeros_like(per_sample))
        total = per_sample.sum()
        if self.reduction == "mean":
            count = mask.sum().clamp_min(1.0) if mask is not None else per_sample.shape[0]
            total = total / count
        return total

    def forward(
        self,
        batch: Mapping[str, torch.Tensor],
        weights: LossWeights,
        masks: Mapping[str, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """All loss terms for one batch. ``masks[name]`` is a ``(B,)`` float/bool tensor (1 = present)."""
        masks = {n: m.to(batch[n].dtype) for n, m in (masks or {}).items()}

        def both(a: str, b: str) -> torch.Tensor | None:
            ma, mb = masks.get(a), masks.get(b)
            if ma is None or mb is None:
                return ma if mb is None else mb
            return ma * mb

        posteriors = {n: self.encoders[n](batch[n]) for n in self.names}
        latents = {n: reparameterize(mu, lv, self.reparameterization, generator) for n, (mu, lv) in posteriors.items()}
        # Each decoder decodes every modality's latent in one batched call: its own (reconstruction)
        # and the others' (cross-reconstruction).
        z_all = torch.cat([latents[n] for n in self.names])
        size = batch[self.names[0]].shape[0]
        terms: dict[str, torch.Tensor] = {}
        decoded: dict[str, dict[str, torch.Tensor]] = {}
        for j in self.names:
            outputs = self.decoders[j](z_all).split(size)
            decoded[j] = dict(zip(self.names, outputs))
        for n in self.names:
            loss_fn = self.modalities[n].reconstruction_loss
            terms[recon_term(n)] = self._reduce(loss_fn(decoded[n][n], batch[n]), masks.get(n))
        for n in self.names:
            terms[kl_term(n)] = self._reduce(kl_to_standard_normal(*posteriors[n]), masks.get(n))
        for i, j in ordered_pairs(self.names):
            loss_fn = self.modalities[j].reconstruction_loss
            terms[cross_term(i, j)] = self._reduce(loss_fn(decoded[j][i], batch[j]), both(i, j))
        for a, b in unordered_pairs(self.names):
            terms[align_term(a, b)] = self._reduce(wasserstein2(*posteriors[a], *posteriors[b]), both(a, b))
        terms["loss"] = self.total(terms, weights)
        return terms

    def total(self, terms: Mapping[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
        """The weighted sum of the terms (per-term ``pair_weights`` multiply on top)."""
        scale = {"recon": 1.0, "kl": weights.beta, "cross": weights.gamma, "align": weights.delta}
        loss = None
        for name, value in terms.items():
            if name == "loss":
                continue
            w = scale[name.split("/", 1)[0]] * self.pair_weights.get(name, 1.0)
            if w == 0.0:
                continue
            loss = value * w if loss is None else loss + value * w
        return loss
