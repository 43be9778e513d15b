"""Modalities: what a plugin describes about one kind of input.

A modality has a registry key (``kind``), a granularity (``"sample"``: one row per image or
sentence; ``"class"``: one row per class), validated options (a pydantic model that rejects unknown
keys), a normaliser, and builders for its encoder, decoder and reconstruction loss.
`FeatureModality` gives CADA-VAE's defaults, so a new vector modality is a few lines:

```python
class AudioEmbedding(mmalign.FeatureModality):
    kind = "audio"
    granularity = "sample"
```
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError
from torch import nn

from .data import AlignmentData
from .errors import ConfigError, DataError, format_validation_error
from .losses import l1_per_sample
from .mapped import MappedFeatures
from .normalise import Normaliser, make_normaliser

Granularity = Literal["sample", "class"]


class Modality:
    """Base class of every modality. Subclasses set ``kind`` and ``granularity`` and implement the
    builders; most should subclass `FeatureModality` instead.

    ``kind`` is the registry key (what a config's ``kind`` names); ``name`` (default: the kind)
    tells two modalities of one kind apart and keys the networks. **Where the data comes from**:
    the array ``data.sample_features[source]`` (``granularity = "sample"``) or
    ``data.class_features[source]`` (``"class"``), with ``source = options.source`` if set, else
    the modality's name. Options (all modalities): ``source`` (default None: the name) and
    ``normaliser`` (default ``"none"``; ``"minmax"``, ``"l2"`` or ``"center_l2"``, fitted on the training split)."""

    kind: ClassVar[str] = ""
    granularity: ClassVar[Granularity] = "sample"

    class Options(BaseModel):
        """Per-modality options. Unknown keys are rejected, and so are NaN and infinite numbers;
        the defaults a subclass declares are checked when the modality is used (`check_options`)."""

        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        source: str | None = Field(None, description="Key of this modality's array in the data (default: the modality name).")
        normaliser: Literal["none", "minmax", "l2", "center_l2"] = Field("none", description="Fitted on the training split only.")

    def __init__(self, name: str | None = None, **options: Any) -> None:
        self.name = name or self.kind
        if not self.name:
            raise ConfigError(f"{type(self).__name__} needs a name (or a class-level 'kind')")
        if not isinstance(self.name, str) or "." in self.name:
            raise ConfigError(f"modality name {self.name!r}: a name must be a string without '.' (it keys the networks and saved tensors)")
        try:
            self.options = self.Options(**options)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(f"modality {self.name!r} ({self.kind}) options", exc)) from None

    def check_options(self, owner: str = "") -> None:
        """Validate every option, the class's defaults included (pydantic leaves declared defaults
        unchecked, so a plugin's wrong default would end deep inside torch); ``owner`` (the plugin)
        leads the `ConfigError`'s message."""
        try:
            self.Options.model_validate(self.options.model_dump())
        except ValidationError as exc:
            lead = f"{owner}: " if owner else ""
            raise ConfigError(format_validation_error(f"{lead}modality {self.name!r} ({self.kind}) options", exc)) from None

    @property
    def source(self) -> str:
        return self.options.source or self.name

    def describe(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild this modality."""
        return {"kind": self.kind, "name": self.name, "options": self.options.model_dump(mode="json")}

    def prepare(self, data: AlignmentData) -> np.ndarray:
        """This modality's raw float32 array from the data (rows = samples or classes).

        The array is ``data.sample_features[source]`` or ``data.class_features[source]``, where
        ``source`` is ``options.source`` when set, else the modality's **name** (not its kind)."""
        try:
            found = data.granularity_of(self.source)
        except DataError as exc:
            if self.options.source is None and self.kind != self.name and self._has_array(data, self.kind):
                raise DataError(
                    f"{exc}. Modality {self.name!r} reads the array named after it; the data has one named after "
                    f"its kind: pass options.source={self.kind!r} (a spec {{'kind': {self.kind!r}, 'name': "
                    f"{self.name!r}, 'source': {self.kind!r}}}) or name the modality {self.kind!r}"
                ) from None
            raise
        if found != self.granularity:
            raise DataError(
                f"modality {self.name!r} is per-{self.granularity} but data {data.name!r} holds "
                f"{self.source!r} per-{found}"
            )
        source = data.array(self.source)
        if isinstance(source, MappedFeatures):  # left on disk; training checks the rows as it streams them
            return source
        array = np.asarray(source, dtype=np.float32)
        if not np.isfinite(array).all():
            row = int(np.argwhere(~np.isfinite(array))[0, 0])
            raise DataError(f"{data.name}: modality {self.name!r} ({self.source!r}) holds NaN or Inf at row {row}")
        return array

    @staticmethod
    def _has_array(data: AlignmentData, key: str) -> bool:
        return key in data.sample_features or key in data.class_features

    def make_normaliser(self) -> Normaliser:
        return make_normaliser(self.options.normaliser)

    def build_encoder(self, in_dim: int, latent_size: int) -> nn.Module:
        """A module mapping ``(B, in_dim)`` to ``(mu, logvar)``, each ``(B, latent_size)``."""
        raise NotImplementedError

    def build_decoder(self, latent_size: int, out_dim: int) -> nn.Module:
        """A module mapping ``(B, latent_size)`` to ``(B, out_dim)``."""
        raise NotImplementedError

    def reconstruction_loss(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample reconstruction loss, shape ``(B,)``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r})"


def cada_init(module: nn.Module) -> None:
    """The reference init: xavier_uniform (gain 0.5) weights, zero biases, for every Linear."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight, gain=0.5)
        nn.init.zeros_(module.bias)


class MLPEncoder(nn.Module):
    """``Linear(in, hidden) -> ReLU``, then two heads ``Linear(hidden, latent)`` for mu and logvar."""

    def __init__(self, in_dim: int, hidden: int, latent_size: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent_size)
        self.logvar = nn.Linear(hidden, latent_size)
        self.apply(cada_init)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


class DropoutMLPEncoder(MLPEncoder):
    """`MLPEncoder` with dropout on its input while training (``p``: the probability of
    zeroing an input value; kept values are scaled by ``1 / (1 - p)``). Draws from torch's global
    generator, which `mmalign.Aligner.fit` seeds from the config's seed."""

    def __init__(self, in_dim: int, hidden: int, latent_size: int, p: float) -> None:
        super().__init__(in_dim, hidden, latent_size)
        self.dropout = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return super().forward(self.dropout(x))


class MLPDecoder(nn.Sequential):
    """``Linear(latent, hidden) -> ReLU -> Linear(hidden, out)``."""

    def __init__(self, latent_size: int, hidden: int, out_dim: int) -> None:
        super().__init__(nn.Linear(latent_size, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        self.apply(cada_init)


class FeatureModality(Modality):
    """A vector modality with CADA-VAE's networks and L1 reconstruction loss (summed over dims).

    Networks: encoder ``Linear(dim, hidden[0]) -> ReLU -> (mu, logvar)`` heads, decoder
    ``Linear(latent, hidden[1]) -> ReLU -> Linear(hidden[1], dim)``, xavier init. Options:
    ``hidden`` (default ``(1450, 665)``, the image-feature sizes of CADA-VAE), plus ``source`` and
    ``normaliser`` (default ``"none"``) from `Modality`. When an `Aligner`
    uses a recipe (default ``cada_vae``) and the user did not set ``hidden``, the recipe's sizes for
    the modality's kind apply (``image_features`` (1560, 1660), ``attributes`` (1450, 665),
    ``sentences`` (1450, 665)); a kind the recipe does not list keeps the class default."""

    class Options(Modality.Options):
        hidden: tuple[PositiveInt, PositiveInt] = Field((1450, 665), description="(encoder hidden, decoder hidden) sizes.")
        input_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the encoder's input while training "
                                                                        "(default 0: CADA-VAE's encoder).")

    def build_encoder(self, in_dim: int, latent_size: int) -> nn.Module:
        p = getattr(self.options, "input_dropout", 0.0)
        if p > 0:
            return DropoutMLPEncoder(in_dim, self.options.hidden[0], latent_size, p)
        return MLPEncoder(in_dim, self.options.hidden[0], latent_size)

    def build_decoder(self, latent_size: int, out_dim: int) -> nn.Module:
        return MLPDecoder(latent_size, self.options.hidden[1], out_dim)

    def reconstruction_loss(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return l1_per_sample(reconstruction, target)
