"""Loss-term families: what a plugin registers through the ``register_losses`` hook.

A family (``recon``, ``kl``, ``cross``, ``align``, ...) is one `LossTerm`: a per-sample
function, the modality tuples it applies to (``each`` modality, every ``ordered`` pair, every
``unordered`` pair) and a default weight schedule (used when the config's ``training.warmup`` does
not name the family). The engine evaluates every family of the model for every tuple, names each
value ``family/a`` (each), ``family/a->b`` (ordered: ``a`` is the source) or ``family/a|b``
(unordered, sorted), reduces it over the batch after masking, and weights it by the family's
weight of the epoch.

The per-sample function is called as ``fn(inputs, *names)`` with a `TermInputs` and returns
one value per sample, shape ``(S, B)`` (S runs trained together; S = 1 for one run):

```python
def contrastive(inputs, a, b):
    (mu_a, _), (mu_b, _) = inputs.posterior(a), inputs.posterior(b)
    return info_nce(mu_a, mu_b, 0.1, inputs.mask(a, b))
```

Beyond the posteriors and decodes, a family may read the batch's class labels
(`TermInputs.labels`, `TermInputs.seen_labels`) and each per-class modality's table
(`TermInputs.class_table`); take options (``options``: a pydantic model validated from the
recipe's ``[loss_options.<family>]`` table, read back with `TermInputs.options`); own a trainable
module (``build``: a factory given a `ModuleSpec`, the module lives in the model's state
dict under ``loss_modules.<family>`` and is trained with the VAE); and be adversarial (``critic``:
the module is then trained by its own optimiser to minimise ``critic(inputs, *names)`` on the
detached latents, ``options.critic_steps`` times before every VAE step, while ``per_sample`` is
what the VAE minimises). A family that uses none of these is written exactly as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import torch
from torch import nn

from .ramps import Ramp

if TYPE_CHECKING:
    from .modality import Modality

Pairing = Literal["each", "ordered", "unordered"]
#: Which decoder outputs a family reads: none, each modality's own reconstruction, or any pair.
Decodes = Literal["none", "own", "cross"]


def options_model(family: str, defaults: Mapping[str, Any]) -> type:
    """A strict pydantic model of ``defaults`` (name -> default value; the value's type is the
    option's type), so options given as a dict are validated like an ``Options`` class."""
    from pydantic import ConfigDict, create_model

    fields = {name: (type(value), value) for name, value in defaults.items()}
    return create_model(f"{family}_options", __config__=ConfigDict(extra="forbid"), **fields)


def ordered_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every ``(source, target)`` with ``source != target``: the cross-reconstruction pairs."""
    return [(i, j) for i in names for j in names if i != j]


def unordered_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every ``{a, b}`` once, each pair sorted by name: the alignment pairs."""
    return list(combinations(sorted(names), 2))


@dataclass(frozen=True)
class ModuleSpec:
    """What a family's module factory (`LossTerm.build`) is given.

    Attributes:
        latent_size: the shared latent dimension.
        dims: modality name -> input dimension.
        names: the modality names, in the model's order.
        num_classes: the number of training (seen) classes; ``TermInputs.seen_labels`` index them.
        options: the family's validated options (None when the family takes none).
    """

    latent_size: int
    dims: Mapping[str, int]
    names: tuple[str, ...]
    num_classes: int
    options: Any = None


@dataclass(frozen=True)
class LossTerm:
    """One family of loss terms (see the module docstring).

    Attributes:
        family: the family's name, the prefix of its term names (letters, digits, ``_``).
        pairing: ``"each"``, ``"ordered"`` or ``"unordered"``.
        per_sample: ``fn(inputs, *names) -> (S, B)``.
        weight: default weight schedule (a `Ramp`, or a constant).
        decodes: which decoder outputs ``per_sample`` reads through ``inputs.decoded`` (lets the
            engine batch the decoder calls, and skip the backward of a family whose weight is 0).
        description: one line for ``mmalign plugins``.
        batch_coupled: whether a sample's value depends on the other samples of the batch (e.g.
            InfoNCE negatives); such a family cannot be split across data-parallel ranks. Default False.
        options: the family's options: a pydantic model class, validated from the recipe's or
            config's ``loss_options.<family>`` table (default None: the family takes no options); a
            dict of option names and defaults (e.g. ``{"temperature": 0.1}``) is made into one.
            The per-sample function reads them with `TermInputs.options` (the validated
            object) or `TermInputs.option` (one value).
        optional: whether a model has this family only when its config names it (in
            ``training.warmup`` or ``loss_options``); default False.
        build: ``build(ModuleSpec) -> nn.Module``: the family's trainable module (default None).
        critic: ``critic(inputs, *names) -> (S, B)``: makes the family adversarial (needs
            ``build``): its module is trained by its own Adam optimiser (``options.critic_lr``,
            betas ``options.critic_betas``) to minimise this, ``options.critic_steps`` times per
            VAE step, and is left out of the VAE's optimiser. Default None.
    """

    family: str
    pairing: Pairing
    per_sample: Callable[..., torch.Tensor] = field(compare=False)
    weight: Ramp | float = 0.0
    decodes: Decodes = "none"
    description: str = ""
    batch_coupled: bool = False
    options: type | Mapping[str, Any] | None = field(default=None, compare=False)
    optional: bool = False
    build: Callable[[ModuleSpec], nn.Module] | None = field(default=None, compare=False)
    critic: Callable[..., torch.Tensor] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.family or not self.family.replace("_", "").isalnum():
            raise ValueError(f"loss family name {self.family!r}: use letters, digits and '_'")
        if self.pairing not in ("each", "ordered", "unordered"):
            raise ValueError(f"loss family {self.family!r}: pairing must be each, ordered or unordered, got {self.pairing!r}")
        if self.decodes not in ("none", "own", "cross"):
            raise ValueError(f"loss family {self.family!r}: decodes must be none, own or cross, got {self.decodes!r}")
        if self.critic is not None and self.build is None:
            raise ValueError(f"loss family {self.family!r}: an adversarial family (critic) needs a module (build)")
        if isinstance(self.options, Mapping):  # names and defaults -> the one form: a strict pydantic model
            object.__setattr__(self, "options", options_model(self.family, self.options))

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


@dataclass
class ClassInfo:
    """A step's class information (see `TermInputs`): ``labels`` ``(S, B)`` class ids,
    ``seen_labels`` ``(S, B)`` their positions among the training classes, ``tables`` per-class
    modality name -> ``(C, d)`` normalised rows (indexed by class id)."""

    labels: torch.Tensor
    seen_labels: torch.Tensor
    tables: Mapping[str, torch.Tensor] = field(default_factory=dict)


class TermInputs:
    """What a family's per-sample function reads for one step of S runs: ``x[name]`` rows
    ``(S, B, d)``, `posterior`, the sampled ``latents``, `decoded`, `mask`, the
    ``modalities`` (for their ``reconstruction_loss``), the batch's `labels` and
    `seen_labels`, `class_table`, `module` and `options`."""

    def __init__(self, modalities: Mapping[str, "Modality"], x: Mapping[str, torch.Tensor],
                 masks: Mapping[str, torch.Tensor], posteriors: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                 latents: Mapping[str, torch.Tensor], decode: Decode, batch_decodes: bool,
                 classes: ClassInfo | None = None, modules: Mapping[str, nn.Module] | None = None,
                 options: Mapping[str, Any] | None = None, reparameterization: str = "cada2019",
                 noise: Mapping[str, torch.Tensor] | None = None) -> None:
        self.modalities, self.x, self.masks = modalities, x, masks
        self.posteriors, self.latents = posteriors, latents
        self._decode, self._batch_decodes = decode, batch_decodes
        self._decoded: dict[str, dict[str, torch.Tensor]] = {}
        self.names = list(modalities)
        self.dtype = next(iter(latents.values())).dtype
        self._classes, self._modules, self._options = classes, modules or {}, options or {}
        #: the model's reparameterisation and each modality's noise of this step (joint posteriors sample with them)
        self.reparameterization, self.noise = reparameterization, dict(noise or {})
        #: values shared by several families within one step (e.g. joint posteriors), keyed by their user
        self.cache: dict[Any, Any] = {}

    def option(self, family: str, key: str, default: Any = None) -> Any:
        """One option of ``family`` (its validated ``loss_options.<family>.<key>``), else ``default``."""
        return getattr(self._options.get(family), key, default)

    def decode(self, target: str, z: torch.Tensor) -> torch.Tensor:
        """``target``'s decoder applied to any latent rows ``z`` ``(S, R, latent)`` (e.g. a joint
        posterior's sample), with a graph."""
        return self._decode(target, z).to(self.dtype)

    def _class_info(self, what: str) -> ClassInfo:
        if self._classes is None:
            raise ValueError(f"{what}: this step was given no class labels (the training data has none)")
        return self._classes

    @property
    def labels(self) -> torch.Tensor:
        """``(S, B)`` the class id of every row of the batch."""
        return self._class_info("labels").labels

    @property
    def seen_labels(self) -> torch.Tensor:
        """``(S, B)`` each row's class as a position among the training classes (``0 .. K-1``, the
        ``num_classes`` of `ModuleSpec`): the target of a seen-class classifier."""
        return self._class_info("seen_labels").seen_labels

    def class_table(self, name: str) -> torch.Tensor:
        """The per-class modality ``name``'s normalised table, ``(C, d)`` indexed by class id."""
        tables = self._class_info("class_table").tables
        if name not in tables:
            raise KeyError(f"no per-class modality {name!r}; per-class modalities: {sorted(tables)}")
        return tables[name]

    def module(self, family: str) -> nn.Module:
        """The trainable module of loss family ``family`` (built by its `LossTerm.build`)."""
        if family not in self._modules:
            raise KeyError(f"loss family {family!r} owns no module in this model; modules: {sorted(self._modules)}")
        return self._modules[family]

    def options(self, family: str) -> Any:
        """The validated options of loss family ``family`` (its ``options`` model)."""
        if family not in self._options:
            raise KeyError(f"loss family {family!r} has no options in this model")
        return self._options[family]

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


def loss_options(terms: Sequence[LossTerm], registered: Sequence[LossTerm],
                 tables: Mapping[str, Mapping[str, Any]], where: str = "loss_options") -> dict[str, Any]:
    """Each of ``terms``' validated options: ``tables[family]`` (the config's ``loss_options`` table)
    checked by the family's ``options`` model, or the model's defaults. A table naming a family no
    plugin registers, or one that takes no options, is a `ConfigError`
    naming the key; ``registered`` are all families (a table of a registered but unweighed family
    is accepted and unused)."""
    from pydantic import ValidationError

    from .errors import ConfigError, format_validation_error

    known = {t.family: t for t in registered}
    for family, table in tables.items():
        if family not in known:
            raise ConfigError(f"config: key '{where}.{family}': no loss family {family!r} is registered; "
                              f"known families: {list(known)}")
        if known[family].options is None and table:
            raise ConfigError(f"config: key '{where}.{family}': loss family {family!r} takes no options")
    out: dict[str, Any] = {}
    for term in terms:
        if term.options is None:
            continue
        try:
            out[term.family] = term.options.model_validate(dict(tables.get(term.family) or {}))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(f"config: key '{where}.{term.family}'", exc)) from None
    return out
