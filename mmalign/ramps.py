"""A loss family's weight per epoch: a linear warm-up ramp or a constant (the recipe's
``training.warmup.<family>`` tables, the loss plugins' defaults)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, model_validator


class Ramp(BaseModel):
    """A loss family's weight per epoch: ``clip((epoch - start) / (end - start) * factor, 0, factor)``
    (the reference code's linear warm-up), or the constant ``factor`` when ``start`` and ``end`` are
    both left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float | None = None
    end: float | None = None
    factor: float

    @model_validator(mode="after")
    def _check_span(self) -> "Ramp":
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end (a linear warm-up), or neither (a constant weight)")
        if self.start is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self

    def at(self, epoch: float) -> float:
        """The weight in ``epoch`` (0-based; evaluated once per epoch, as in the reference)."""
        if self.start is None:
            return self.factor
        value = (epoch - self.start) / (self.end - self.start) * self.factor
        return min(max(value, 0.0), self.factor)

    def scaled(self, f: float) -> "Ramp":
        """The same ramp over an epoch axis stretched by ``f`` (a run of ``f`` times the epochs)."""
        if self.start is None:
            return self
        return Ramp(start=self.start * f, end=self.end * f, factor=self.factor)

    def first_active_epoch(self, epochs: int | None = None) -> int | None:
        """The first epoch (below ``epochs``, when given) with a non-zero weight, or None."""
        if self.factor == 0.0:
            return None
        first = 0 if self.start is None else max(0, math.floor(self.start) + 1)
        return first if epochs is None or first < epochs else None
