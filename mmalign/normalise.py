"""Feature normalisers, fitted on the training split only and saved with the model.

``minmax`` is sklearn's MinMaxScaler to [0, 1] per dimension (as in CADA-VAE's code): a dimension
with zero range is scaled by 1. ``l2`` scales each row to unit norm (stateless); ``center_l2``
subtracts the training rows' mean, then scales each row to unit norm (the centring the linear
retrieval baselines use); ``none`` is the identity. State is a flat dict of tensors so it can live in safetensors.
"""

from __future__ import annotations

from typing import Iterable

import torch

from .errors import CheckpointError, ConfigError


class Normaliser:
    """Identity; the base of every normaliser."""

    name = "none"

    def fit(self, x: torch.Tensor) -> "Normaliser":
        return self

    def fit_chunks(self, chunks: Iterable[torch.Tensor]) -> "Normaliser":
        """Fit on the rows of ``chunks`` taken together (features read from disk block by block).
        The base class concatenates them; normalisers with a streaming fit override it."""
        return self.fit(torch.cat(list(chunks)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised rows back to the raw feature space (identity where that cannot be undone)."""
        return x

    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise CheckpointError(f"normaliser {self.name!r} takes no state, got tensors {sorted(state)}")


class MinMax(Normaliser):
    name = "minmax"

    def __init__(self) -> None:
        self.min: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> "MinMax":
        lo, hi = x.min(dim=0).values, x.max(dim=0).values
        span = hi - lo
        self.min = lo
        self.scale = torch.where(span > 0, 1.0 / torch.where(span > 0, span, 1.0), torch.ones_like(span))
        return self

    def fit_chunks(self, chunks: Iterable[torch.Tensor]) -> "MinMax":
        """Streaming fit: the running column min and max, the same state as `fit` on all rows."""
        lo = hi = None
        for x in chunks:
            if x.shape[0] == 0:
                continue
            a, b = torch.aminmax(x, dim=0)
            lo, hi = (a, b) if lo is None else (torch.minimum(lo, a), torch.maximum(hi, b))
        if lo is None:
            raise ConfigError("MinMax normaliser cannot be fitted on zero rows")
        return self.fit(torch.stack([lo, hi]))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.min is None or self.scale is None:
            raise ConfigError("MinMax normaliser used before it was fitted on the training split")
        return (x - self.min.to(x.device, x.dtype)) * self.scale.to(x.device, x.dtype)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        if self.min is None or self.scale is None:
            raise ConfigError("MinMax normaliser used before it was fitted on the training split")
        return x / self.scale.to(x.device, x.dtype) + self.min.to(x.device, x.dtype)

    def state(self) -> dict[str, torch.Tensor]:
        if self.min is None or self.scale is None:
            return {}
        return {"min": self.min.detach().cpu().contiguous(), "scale": self.scale.detach().cpu().contiguous()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != {"min", "scale"}:
            raise CheckpointError(f"minmax normaliser state needs tensors 'min' and 'scale', got {sorted(state)}")
        if not bool(torch.isfinite(state["min"]).all()):
            raise CheckpointError("tensor 'min' holds NaN or infinite values")
        if not bool((torch.isfinite(state["scale"]) & (state["scale"] > 0)).all()):
            raise CheckpointError("tensor 'scale' must be finite and positive (it is 1 / the training range)")
        self.min, self.scale = state["min"], state["scale"]


class L2(Normaliser):
    """Rows scaled to unit norm; `inverse` is the identity (the norms are not kept)."""

    name = "l2"

    def fit_chunks(self, chunks: Iterable[torch.Tensor]) -> "L2":
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, dim=1)


class CenterL2(Normaliser):
    """Rows minus the training mean, then scaled to unit norm; `inverse` adds the mean back
    (the norms are not kept)."""

    name = "center_l2"

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> "CenterL2":
        if x.shape[0] == 0:
            raise ConfigError("center_l2 normaliser cannot be fitted on zero rows")
        self.mean = x.double().mean(dim=0).to(x.dtype)
        return self

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise ConfigError("center_l2 normaliser used before it was fitted on the training split")
        return self.mean.to(x.device, x.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x - self._mean(x), dim=1)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._mean(x)

    def state(self) -> dict[str, torch.Tensor]:
        return {} if self.mean is None else {"mean": self.mean.detach().cpu().contiguous()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != {"mean"}:
            raise CheckpointError(f"center_l2 normaliser state needs the tensor 'mean', got {sorted(state)}")
        if not bool(torch.isfinite(state["mean"]).all()):
            raise CheckpointError("tensor 'mean' holds NaN or infinite values")
        self.mean = state["mean"]


NORMALISERS: dict[str, type[Normaliser]] = {"none": Normaliser, "minmax": MinMax, "l2": L2, "center_l2": CenterL2}


def make_normaliser(name: str) -> Normaliser:
    if name not in NORMALISERS:
        raise ConfigError(f"unknown normaliser {name!r}; expected one of {sorted(NORMALISERS)}")
    return NORMALISERS[name]()
