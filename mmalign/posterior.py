"""Joint posteriors over subsets of modalities: the product of experts (MVAE, Wu and Goodman 2018)
and the subsets a mixture of products of experts averages over (MoPoE, Sutter et al. 2021).

Each modality's encoder is one Gaussian expert ``N(mu_i, exp(logvar_i))``; the joint posterior of a
subset ``S`` is their product with the prior expert ``N(0, I)``:

```python
T = 1 + sum_{i in S} exp(-logvar_i),  mu_S = sum_{i in S} mu_i exp(-logvar_i) / T,  logvar_S = -log T
```

A row lacking modality ``i`` (mask 0) drops expert ``i``, so any subset of the modalities present
encodes. The loss families of ``mmalign_plugins.joint`` train with these posteriors, and
`mmalign.Aligner.embed` (and ``translate``, ``retrieve``) encode a subset with them.
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence

import torch

from .errors import ConfigError

#: Which subsets the joint families use: every subset of at least two modalities (MoPoE's mixture
#: components beyond the single modalities), or only the full set (MVAE's joint posterior).
SUBSETS = ("all", "full")


def product_of_experts(
    experts: Sequence[tuple[torch.Tensor, torch.Tensor]], masks: Sequence[torch.Tensor | None] | None = None,
    prior: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The product of Gaussian experts ``(mu, logvar)`` (same shape, ``(..., k)``), with the standard
    normal prior expert when ``prior`` (default True). ``masks[i]`` (``(...)``, 1 = present, or None)
    drops expert ``i`` where 0. Returns the product's ``(mu, logvar)``."""
    if not experts:
        raise ConfigError("a product of experts needs at least one expert")
    masks = list(masks) if masks is not None else [None] * len(experts)
    mu0 = experts[0][0]
    precision = torch.ones_like(mu0) if prior else torch.zeros_like(mu0)
    weighted = torch.zeros_like(mu0)
    for (mu, logvar), mask in zip(experts, masks):
        t = torch.exp(-logvar)
        if mask is not None:
            t = torch.where(mask[..., None] > 0, t, torch.zeros_like(t))
        precision = precision + t
        weighted = weighted + mu * t
    return weighted / precision, -torch.log(precision)


def subsets(names: Sequence[str], which: str = "all") -> list[tuple[str, ...]]:
    """The subsets of ``names`` the joint families use (`SUBSETS`), in a fixed order."""
    if which not in SUBSETS:
        raise ConfigError(f"joint subsets must be one of {SUBSETS}, got {which!r}")
    if which == "full":
        return [tuple(names)]
    return [c for k in range(2, len(names) + 1) for c in combinations(names, k)]


def subset_posterior(posteriors: Mapping[str, tuple[torch.Tensor, torch.Tensor]], subset: Sequence[str],
                     masks: Mapping[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The product of experts of the modalities in ``subset`` (with the prior expert)."""
    masks = masks or {}
    return product_of_experts([posteriors[n] for n in subset], [masks.get(n) for n in subset])
