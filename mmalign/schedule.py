"""The loss weights of every epoch: one schedule object built from the config's ``training.warmup``
(the recipe's data) and the registered loss families' defaults. Nothing else derives weights."""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import torch

from .errors import ConfigError
from .ramps import Ramp
from .terms import LossTerm


class LossWeights(Mapping[str, float]):
    """Each loss family's weight for one epoch, e.g. ``LossWeights(kl=0.25, cross=2.37, align=8.13)``.

    A family not given weighs 1 if it is ``recon`` and 0 otherwise."""

    def __init__(self, weights: Mapping[str, float] | None = None, **by_family: float) -> None:
        self._w = {**(weights or {}), **by_family}

    def __getitem__(self, family: str) -> float:
        if family in self._w:
            return float(self._w[family])
        return 1.0 if family == "recon" else 0.0

    def __iter__(self) -> Iterator[str]:
        return iter(self._w)

    def __len__(self) -> int:
        return len(self._w)

    def __repr__(self) -> str:
        return f"LossWeights({', '.join(f'{k}={v:g}' for k, v in self._w.items())})"

    def active(self, families: Sequence[str]) -> frozenset[str]:
        """The families whose weight is non-zero."""
        return frozenset(f for f in families if self[f] != 0.0)

    def tensor(self, families: Sequence[str], device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
        """The weights of ``families`` in that order, as a tensor (for a compiled or captured step)."""
        return torch.tensor([self[f] for f in families], device=device, dtype=dtype)


class LossSchedule:
    """``families``' weight schedules: the config's ramp where it names the family, else the
    family's registered default. ``at(epoch)`` gives the `LossWeights` of an epoch. A ramp
    naming a family not in ``terms`` is an error unless its factor is 0 (a family left out of the
    model by `weighed`)."""

    def __init__(self, terms: Sequence[LossTerm], ramps: Mapping[str, Ramp], where: str = "training.warmup") -> None:
        known = [t.family for t in terms]
        unknown = sorted(f for f in set(ramps) - set(known) if ramps[f].factor != 0.0)
        if unknown:
            raise ConfigError(f"config: key '{where}.{unknown[0]}': no loss family {unknown[0]!r} is registered; "
                              f"known families: {known}")
        self.ramps: dict[str, Ramp] = {t.family: ramps.get(t.family, t.default_ramp()) for t in terms}
        self.families = known

    def weighed(self, terms: Sequence[LossTerm]) -> list[LossTerm]:
        """``terms`` without the families whose schedule is 0 at every epoch (factor 0): those are
        neither built, computed nor logged (so an installed family a recipe does not weigh leaves
        no trace in its runs). A family whose warm-up merely starts after a short run ends is kept."""
        return [t for t in terms if self.ramps[t.family].factor != 0.0]

    def at(self, epoch: int) -> LossWeights:
        return LossWeights({f: r.at(epoch) for f, r in self.ramps.items()})

    def never_active(self, epochs: int) -> list[str]:
        """Families whose weight stays 0 over epochs ``0 .. epochs - 1`` although it is not always 0:
        a run this short never trains them (their warm-up starts later)."""
        return [f for f, r in self.ramps.items()
                if r.first_active_epoch(epochs) is None and r.first_active_epoch() is not None]
