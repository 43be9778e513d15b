"""Loss-term families: what a plugin registers through the ``register_losses`` hook.

A family (``recon``, ``kl``, ``cross``, ``align``, ...) is one :class:`LossTerm`: a per-sample
function, the modality tuples it applies to (``each`` modality, every ``ordered`` pair, every
``unordered`` pair) and a default weight schedule (used when the config's ``training.warmup`` does
not name the family). The engine evaluates every family of the model for every tuple, names each
value ``family/a`` (each), ``family/a->b`` (ordered: ``a`` is the source) or ``family/a|b``
(unordered, sorted), reduces it over the batch after masking, and weights it by the family's
weight of the epoch.

The per-sample function is called as ``fn(inputs, *names)`` with a :class:`TermInputs` and returns
one value per sample, shape ``(S, B)`` (S runs trained together; S = 1 for one run)::

    def contrastive(inputs, a, b):
        (mu_a, _), (mu_b, _) = inputs.posterior(a), inputs.posterior(b)
        return info_nce(mu_a, mu_b, 0.1, inputs.mask(a, b))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import torch

from .ramps import Ramp

if TYPE_CHECKING:
    from .modality import Modality

Pairing = Literal["each", "ordered", "unordered"]
#: Which decoder outputs a family reads: none, each modality's own reconstruction, or any pair.
Decodes = Literal["none", "own", "cross"]


def ordered_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every ``(source, target)`` with ``source != target``: the cross-reconstruction pairs."""
    return [(i, j) for i in names for j in names if i != j]


def unordered_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every ``{a, b}`` once, each pair sorted by name: the alignment pairs."""
    return list(combinations(sorted(names), 2))


@dataclass(frozen=True)
class LossTerm:
    """One family of loss terms (see the module docstring).

    Attributes:
        family: the family's name, the prefix of its term names (letters, digits, ``_``).
        pairing: ``"each"``, ``"ordered"`` or ``"unordered"``.
        per_sample: ``fn(inputs, *names) -> (S, B)``.
        weight: default weight schedule (a :class:`~mmalign.recipes.Ramp`, or a constant).
        decodes: which decoder outputs ``per_sample`` reads through ``inputs.decoded`` (lets the
            engine batch the decoder calls, and skip the backward of a family whose weight is 0).
        description: one line for ``mmalign plugins``.
        batch_coupled: whether a sample's value depends on the other samples of the batch (e.g.
            InfoNCE negatives); such a family cannot be split across data-parallel ranks. Default False.
        options: the options the family accepts and their defaults (e.g. ``{"temperature": 0.1}``);
            a config sets them under ``loss_options.<family>`` and the per-sample function reads
            them with :meth:`TermInputs.option`. Default: none.
        optional: whether a model has this family only when its config names it (in
            ``training.warmup`` or ``loss_options``); default False (every model has it).
    """

    family: str
    pairing: Pairing
    per_sample: Callable[..., torch.Tensor] = field(compare=False)
    weight: Ramp | float = 0.0
    decodes: Decodes = "none"
    description: str = ""
    batch_coupled: bool = False
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    optional: bool = False

    def __post_init__(self) -> None:
        if not self.family or not self.family.replace("_", "").isalnum():
            raise ValueError(f"loss family name {self.family!r}: use letters, digits and '_'")
        if self.pairing not in ("each", "ordered", "unordered"):
            raise ValueError(f"loss family {self.family!r}: pairing must be each, ordered or unordered, got {self.pairing!r}")
        if self.decodes not in ("none", "own", "cross"):
            raise ValueError(f"loss family {self.family!r}: decodes must be none, own or cross, got {self.decodes!r}")

    def tuples(self, names: Sequence[str]) -> list[tuple[str, ...]]:
        """The modality tuples this family applies to, in a fixed order."""
        if self.pairing == "each":
            return [(n,) for n in names]
        return list(ordered_pairs(names) if self.pairing == "ordered" else unordered_pairs(names))

    def term_name(self, *names: str) -> str:
        if self.pairing == "each":
            return f"{self.family}/{names[0]}"
        if self.pairing == "ordered":
            return f"{self.family}/{names[0]}->{names[1]}"
        a, b = sorted(names)
        return f"{self.family}/{a}|{b}"

    def default_ramp(self) -> Ramp:
        return self.weight if isinstance(self.weight, Ramp) else Ramp(factor=float(self.weight))


#: ``encode(name, x (S, B, d)) -> (mu, logvar)``, each ``(S, B, latent)``.
Encode = Callable[[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: ``decode(name, z (S, R, latent)) -> (S, R, d)``.
Decode = Callable[[str, torch.Tensor], torch.Tensor]


class TermInputs:
    """What a family's per-sample function reads for one step of S runs: ``x[name]`` rows
    ``(S, B, d)``, :meth:`posterior`, the sampled ``latents``, :meth:`decoded`, :meth:`mask` and the
    ``modalities`` (for their ``reconstruction_loss``)."""

    def __init__(self, modalities: Mapping[str, "Modality"], x: Mapping[str, torch.Tensor],
                 masks: Mapping[str, torch.Tensor], posteriors: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                 latents: Mapping[str, torch.Tensor], decode: Decode, batch_decodes: bool,
                 options: Mapping[str, Mapping[str, Any]] | None = None, reparameterization: str = "cada2019",
                 noise: Mapping[str, torch.Tensor] | None = None) -> None:
        self.modalities, self.x, self.masks = modalities, x, masks
        self.posteriors, self.latents = posteriors, latents
        self._decode, self._batch_decodes = decode, batch_decodes
        self._decoded: dict[str, dict[str, torch.Tensor]] = {}
        self.names = list(modalities)
        self.dtype = next(iter(latents.values())).dtype
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        #: the model's reparameterisation and each modality's noise of this step (joint posteriors sample with them)
        self.reparameterization, self.noise = reparameterization, dict(noise or {})
        #: values shared by several families within one step (e.g. joint posteriors), keyed by their user
        self.cache: dict[Any, Any] = {}

    def option(self, family: str, key: str, default: Any = None) -> Any:
        """The config's ``loss_options.<family>.<key>``, else ``default``."""
        return self.options.get(family, {}).get(key, default)

    def decode(self, target: str, z: torch.Tensor) -> torch.Tensor:
        """``target``'s decoder applied to any latent rows ``z`` ``(S, R, latent)`` (e.g. a joint
        posterior's sample), with a graph."""
        return self._decode(target, z).to(self.dtype)

    def posterior(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.posteriors[name]

    def decoded(self, source: str, target: str) -> torch.Tensor:
        """``target``'s decoder applied to ``source``'s latent sample, ``(S, B, d_target)``.

        When some weighted family reads cross decodes, each decoder decodes every modality's latent
        in one call; otherwise each decoder's own reconstruction keeps its graph and the others are
        decoded without one (their values only go to the log)."""
        cache = self._decoded.setdefault(target, {})
        if source not in cache:
            size = self.latents[target].shape[1]
            if self._batch_decodes:
                z_all = torch.cat([self.latents[n] for n in self.names], dim=1)
                cache.update(zip(self.names, self._decode(target, z_all).to(self.dtype).split(size, dim=1)))
            elif source == target:
                cache[target] = self._decode(target, self.latents[target]).to(self.dtype)
            else:
                others = [n for n in self.names if n != target]
                with torch.no_grad():
                    z = torch.cat([self.latents[n].detach() for n in others], dim=1)
                    cache.update(zip(others, self._decode(target, z).to(self.dtype).split(size, dim=1)))
        return cache[source]

    def mask(self, *names: str) -> torch.Tensor | None:
        """``(S, B)`` 1 where every one of ``names`` is present, or None when all are always present."""
        found = [self.masks[n] for n in names if n in self.masks]
        if not found:
            return None
        out = found[0]
        for m in found[1:]:
            out = out * m
        return out

    @staticmethod
    def per_sample(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> torch.Tensor:
        """A ``(B, d) -> (B,)`` function (a modality's loss) applied to ``(S, B, d)`` tensors -> ``(S, B)``."""
        s, b = tensors[0].shape[:2]
        return fn(*(t.reshape(s * b, t.shape[-1]) for t in tensors)).view(s, b)
