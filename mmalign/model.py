"""The M-modality aligned VAE: encoders and decoders keyed by modality name, and the loss.

For modalities ``i, j`` in the experiment, with CADA-VAE's families, one batch's loss is:

```python
sum_i [recon_i + beta * KL_i] + gamma * sum_{i != j} cross_{i->j} + delta * sum_{i<j} W_ij
```

The families (``recon``, ``kl``, ``cross``, ``align``, and any a plugin adds through the
``register_losses`` hook, see `mmalign.terms`) and their weights come from outside: the model
evaluates each family for its modality tuples and names every term stably (``recon/img``,
``kl/img``, ``cross/att->img`` = decode ``img`` from the latent of ``att``, ``align/att|img``).
Terms are reduced over the batch (``sum`` as in CADA-VAE, or ``mean``) after masking: a sample
lacking modality ``m`` drops only the terms that involve ``m``. ``loss`` is the weighted total.

`compute_terms` is the one forward pass, written for S runs at once (rows ``(S, B, d)``,
noise drawn outside); `AlignedVAE.forward` is that code with S = 1 and the noise drawn from
a generator, and the training step strategies (`mmalign.training.steps`) call it directly.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence

import torch
from torch import nn

from .errors import ConfigError
from .losses import Reparameterization, apply_noise, draw_noise
from .modality import Modality
from .schedule import LossWeights
from .terms import ClassInfo, Decode, Encode, LossTerm, ModuleSpec, TermInputs, ordered_pairs, unordered_pairs
from .terms import loss_options as validated_options

__all__ = ["AlignedVAE", "LossWeights", "compute_terms", "critic_loss", "default_terms", "ordered_pairs",
           "unordered_pairs"]


def default_terms() -> list[LossTerm]:
    """The loss families registered through the plugins' ``register_losses`` hook whose default
    weight is not 0 (the rule of the hook: a family never weighed is not part of a model), less the
    optional ones (`LossTerm.optional`, present only when a config names them)."""
    from .plugins import get_catalog

    return [t for t in get_catalog().losses.values() if not t.optional and t.default_ramp().factor != 0.0]


class AlignedVAE(nn.Module):
    """One VAE per modality, trained jointly under the given loss families.

    Args:
        modalities: name -> modality (builds the encoder, decoder and reconstruction loss).
        dims: name -> input dimension.
        latent_size: latent dimension shared by all modalities (CADA: 64).
        reparameterization: ``cada2019`` (the reference code) or ``standard``.
        reduction: batch reduction of every term, ``sum`` (CADA) or ``mean``.
        pair_weights: an extra weight per term name, e.g. ``{"cross/att->img": 0.5}``; a name that
            is not a term of this model is an error.
        terms: the loss families (default: every registered family with a non-zero default weight,
            `default_terms`).
        tuple_scaling: how a family's terms over its modality tuples add up (`TUPLE_SCALINGS`):
            ``sum`` (default, CADA-VAE: a family grows with the number of tuples, e.g. 6
            cross-reconstructions at M = 3 against 2 at M = 2), ``mean`` (each family is the mean
            over its tuples, so its weight means the same for any M) or ``pair`` (each family is
            scaled to its number of tuples at M = 2: identical to ``sum`` for two modalities, and
            the same size for more).
        num_classes: the number of training classes, given to the families' module factories
            (default 0: no family needs it).
        loss_options: family -> its options, validated objects or dicts (default: none; a family with
            options not named here gets their defaults); an unknown family or option is an error.

    The modules of the families that own one (``LossTerm.build``) are built after the encoders and
    decoders (so those draw the same initial weights with or without them) and live in
    ``loss_modules`` (state-dict keys ``loss_modules.<family>.*``).
    """

    def __init__(
        self,
        modalities: Mapping[str, Modality],
        dims: Mapping[str, int],
        latent_size: int = 64,
        reparameterization: Reparameterization = "cada2019",
        reduction: str = "sum",
        pair_weights: Mapping[str, float] | None = None,
        terms: Sequence[LossTerm] | None = None,
        tuple_scaling: str = "sum",
        num_classes: int = 0,
        loss_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.names = list(modalities)
        self.modalities = dict(modalities)
        self.latent_size = latent_size
        self.reparameterization = reparameterization
        self.reduction = reduction
        self.terms = list(default_terms() if terms is None else terms)
        self.families = [t.family for t in self.terms]
        self.pair_weights = dict(pair_weights or {})
        unknown = sorted(set(self.pair_weights) - set(self.term_names()))
        if unknown:
            raise ConfigError(f"config: key 'pair_weights.{unknown[0]}': not a loss term of this model; "
                              f"its terms are {self.term_names()[:-1]}")
        if tuple_scaling not in TUPLE_SCALINGS:
            raise ConfigError(f"config: key 'tuple_scaling': expected one of {TUPLE_SCALINGS}, got {tuple_scaling!r}")
        self.tuple_scaling = tuple_scaling
        self.tuple_scale = {t.family: tuple_scale(t, self.names, tuple_scaling) for t in self.terms}
        self.encoders = nn.ModuleDict({n: m.build_encoder(dims[n], latent_size) for n, m in modalities.items()})
        self.decoders = nn.ModuleDict({n: m.build_decoder(latent_size, dims[n]) for n, m in modalities.items()})
        self.num_classes = int(num_classes)
        self.loss_options = validated_options(self.terms, self.terms, loss_options or {})
        self.loss_modules = nn.ModuleDict({
            t.family: t.build(ModuleSpec(latent_size, dict(dims), tuple(self.names), self.num_classes,
                                         self.loss_options.get(t.family)))
            for t in self.terms if t.build is not None})

    @property
    def adversaries(self) -> list[LossTerm]:
        """The adversarial families (those with a ``critic``), in order."""
        return [t for t in self.terms if t.critic is not None]

    def vae_parameters(self) -> list[nn.Parameter]:
        """Every parameter the VAE's optimiser trains: all but the adversarial families' modules."""
        excluded = {id(p) for t in self.adversaries for p in self.loss_modules[t.family].parameters()}
        return [p for p in self.parameters() if id(p) not in excluded]

    def term_names(self) -> list[str]:
        """Every term `forward` returns, in order (``loss`` last)."""
        return [t.term_name(*tup) for t in self.terms for tup in t.tuples(self.names)] + ["loss"]

    def encode(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoders[name](x)

    def forward(
        self,
        batch: Mapping[str, torch.Tensor],
        weights: LossWeights,
        masks: Mapping[str, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """All terms for one ``(B, d)`` batch, the noise drawn from ``generator`` (one ``randn`` per
        modality, in ``names`` order). ``masks[name]`` is a ``(B,)`` float/bool tensor (1 = present).
        The logged terms are detached; ``loss`` carries the graph."""
        first = batch[self.names[0]]
        eps = {n: draw_noise(self.reparameterization, first.shape[0], self.latent_size, generator, first.device,
                             first.dtype) for n in self.names}
        one = lambda d: {k: v[None] for k, v in d.items()}  # noqa: E731
        values = compute_terms(self, self.own_encode, self.own_decode, one(batch), one(masks or {}), one(eps), weights)
        return dict(zip(self.term_names(), values[0].unbind()))

    # (1, ...) views in and out; reshape rather than [0], whose backward is a zeros and a copy kernel
    def own_encode(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode`` for ``(1, B, d)`` rows: the `Encode` of this model's own networks."""
        mu, logvar = self.encoders[name](x.reshape(x.shape[1:]))
        return mu[None], logvar[None]

    def own_decode(self, name: str, z: torch.Tensor) -> torch.Tensor:
        return self.decoders[name](z.reshape(z.shape[1:]))[None]


#: How a family's terms over its modality tuples add up (see `AlignedVAE`).
TUPLE_SCALINGS = ("sum", "mean", "pair")


def tuple_scale(term: LossTerm, names: Sequence[str], scaling: str) -> float:
    """The factor on every term of ``term``'s family: 1 for ``sum``, 1 / (its tuples) for ``mean``,
    (its tuples at M = 2) / (its tuples) for ``pair``."""
    count = len(term.tuples(names))
    if scaling == "sum" or count == 0:
        return 1.0
    if scaling == "mean":
        return 1.0 / count
    return len(term.tuples(["a", "b"])) / count


def _reduce(reduction: str, per_sample: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``(S, B) -> (S,)``: the batch sum (or mean over present rows) after masking."""
    if mask is not None:  # where, not a product: a masked row's inf or NaN must not leak
        per_sample = torch.where(mask > 0, per_sample, torch.zeros_like(per_sample))
    total = per_sample.sum(dim=1)
    if reduction == "mean":
        count = mask.sum(dim=1).clamp_min(1.0) if mask is not None else per_sample.shape[1]
        total = total / count
    return total


def _posteriors_and_latents(model: AlignedVAE, encode: Encode, batch: Mapping[str, torch.Tensor],
                            eps: Mapping[str, torch.Tensor], dtype: torch.dtype) -> tuple[dict, dict]:
    """Each modality's posterior ``(mu, logvar)`` and its sampled latent with the step's noise. Cast
    to ``dtype``: under bf16 autocast only the products run in bf16, every loss term in fp32."""
    posteriors = {}
    for n in model.names:
        mu, logvar = encode(n, batch[n])
        posteriors[n] = (mu.to(dtype), logvar.to(dtype))
    latents = {n: apply_noise(mu, lv, model.reparameterization, eps[n]) for n, (mu, lv) in posteriors.items()}
    return posteriors, latents


def compute_terms(
    model: AlignedVAE,
    encode: Encode,
    decode: Decode,
    batch: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    eps: Mapping[str, torch.Tensor],
    weights: LossWeights | torch.Tensor,
    active: Collection[str] | None = None,
    classes: ClassInfo | None = None,
) -> torch.Tensor:
    """Every term for S runs, ``(S, T)`` in ``model.term_names()`` order, ``loss`` last.

    ``model`` supplies the modalities, families and settings; the networks are reached through
    ``encode``/``decode`` (the model's own, or S runs' stacked weights). ``batch`` rows are
    ``(S, B, d)``, ``masks`` ``(S, B)``, ``eps`` the noise per modality (leading ``S``).

    ``weights`` is a `LossWeights`, or a tensor of the weights of ``model.families`` in that
    order (a tensor keeps a compiled or captured step independent of the epoch's values).
    ``active`` names the families that enter the loss and get a graph (default: those with a
    non-zero `LossWeights` weight; every family for a tensor). The others are evaluated
    without a graph, for the log only. Logged terms are detached; the loss keeps the graph.
    ``classes`` (default None) gives the families the batch's labels and the class tables.
    """
    names = model.names
    dtype = eps[names[0]].dtype
    if active is None:
        active = weights.active(model.families) if isinstance(weights, LossWeights) else frozenset(model.families)
    masks = {n: m.to(dtype) for n, m in masks.items()}
    posteriors, latents = _posteriors_and_latents(model, encode, batch, eps, dtype)
    batch_decodes = any(t.decodes == "cross" and t.family in active for t in model.terms)
    inputs = TermInputs(model.modalities, batch, masks, posteriors, latents, decode, batch_decodes,
                        classes, model.loss_modules, model.loss_options, model.reparameterization, eps)

    values: dict[str, torch.Tensor] = {}

    def evaluate(term: LossTerm) -> None:
        for tup in term.tuples(names):
            per_sample = term.per_sample(inputs, *tup)
            values[term.term_name(*tup)] = _reduce(model.reduction, per_sample, inputs.mask(*tup))

    for term in model.terms:
        if term.family in active:
            evaluate(term)
    with torch.no_grad():
        for term in model.terms:
            if term.family not in active:
                evaluate(term)

    loss = None
    for i, term in enumerate(model.terms):
        if term.family not in active:
            continue
        w = weights[term.family] if isinstance(weights, LossWeights) else weights[i]
        for tup in term.tuples(names):
            name = term.term_name(*tup)
            pair = model.pair_weights.get(name, 1.0)
            if pair == 0.0:
                continue
            scale = model.tuple_scale.get(term.family, 1.0) if hasattr(model, "tuple_scale") else 1.0
            contribution = values[name] * (w * pair) if scale == 1.0 else values[name] * (w * pair * scale)
            loss = contribution if loss is None else loss + contribution
    if loss is None:
        loss = torch.zeros_like(next(iter(values.values())))
    order = model.term_names()[:-1]
    # The logged terms leave the graph: stacked as they are, each would get a zero gradient back from
    # the stack (a zeros and an add kernel per term on every step, a fifth of a GPU step's kernels).
    return torch.stack([*(values[n].detach() for n in order), loss], dim=1)


def critic_loss(
    model: AlignedVAE,
    term: LossTerm,
    encode: Encode,
    decode: Decode,
    batch: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    eps: Mapping[str, torch.Tensor],
    classes: ClassInfo | None = None,
) -> torch.Tensor:
    """``(S,)``: the adversarial family ``term``'s critic objective summed over its tuples, on the
    VAE's posteriors and latents computed without a graph (so only the critic's module gets
    gradients). Reduced over the batch as the terms are."""
    names = model.names
    dtype = eps[names[0]].dtype
    masks = {n: m.to(dtype) for n, m in masks.items()}
    with torch.no_grad():
        posteriors, latents = _posteriors_and_latents(model, encode, batch, eps, dtype)
    inputs = TermInputs(model.modalities, batch, masks, posteriors, latents, decode, False,
                        classes, model.loss_modules, model.loss_options, model.reparameterization, eps)
    total = None
    for tup in term.tuples(names):
        value = _reduce(model.reduction, term.critic(inputs, *tup), inputs.mask(*tup))
        total = value if total is None else total + value
    return total
