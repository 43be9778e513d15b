"""Contrastive alignment of the latents with instance- and class-level positives, across every
pair of modalities.

After CE-GZSL: Z. Han, Z. Fu, S. Chen, J. Yang, "Contrastive Embedding for Generalized Zero-Shot
Learning", CVPR 2021 (instance-level and class-level contrastive embedding). Here the two
modalities of a pair take the places of the real and synthetic embeddings: for every row ``i`` of
modality ``a`` the candidates are the batch's rows of modality ``b``; the instance-level positive is
row ``i`` itself (InfoNCE), the class-level positives are every row of the same class (supervised
contrastive, Khosla et al. 2020). Per sample, in both directions and averaged:

```python
instance_i = logsumexp_j s_ij - s_ii
class_i    = logsumexp_j s_ij - logsumexp_{j: y_j = y_i} s_ij
value_i    = instance_i + class_weight * class_i
```

with ``s_ij`` the cosine similarity of the (optionally projected) posterior means over
``temperature``. The family reads the batch labels and, with ``projection > 0``, owns a projection
head shared by all modalities (``Linear(latent, projection) -> ReLU -> Linear(projection,
projection)``), trained with the VAE. Registered through ``register_losses`` as any plugin; weight
0 unless a recipe weighs it (``registry/recipes/cada_contrastive.toml``).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat
from torch import nn

import mmalign
from mmalign.terms import LossTerm, ModuleSpec, TermInputs

FAMILY = "contrastive_align"


class Options(BaseModel):
    """Options of ``contrastive_align`` (recipe table ``[loss_options.contrastive_align]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: PositiveFloat = Field(0.1, description="Softmax temperature of the cosine similarities.")
    class_weight: NonNegativeFloat = Field(1.0, description="Weight of the class-level term (instance-level: 1).")
    projection: NonNegativeInt = Field(0, description="Width of the shared projection head (0: none, the means).")


def build(spec: ModuleSpec) -> nn.Module:
    width = spec.options.projection
    if width == 0:
        return nn.Identity()
    return nn.Sequential(nn.Linear(spec.latent_size, width), nn.ReLU(), nn.Linear(width, width))


def _direction(sim: torch.Tensor, same: torch.Tensor, valid: torch.Tensor | None, class_weight: float) -> torch.Tensor:
    """Rows of ``sim`` ``(S, B, B)`` are anchors; ``same`` marks the class-level positives."""
    if valid is not None:  # a large finite negative: a fully masked row stays finite
        sim = sim.masked_fill(valid[..., None, :] <= 0, -1e4)
    total = torch.logsumexp(sim, dim=-1)
    instance = total - torch.diagonal(sim, dim1=-2, dim2=-1)
    positives = torch.logsumexp(sim.masked_fill(~same, -1e4), dim=-1)
    return instance + class_weight * (total - positives)


def contrastive_alignment(inputs: TermInputs, a: str, b: str) -> torch.Tensor:
    options = inputs.options(FAMILY)
    head = inputs.module(FAMILY)
    za = nn.functional.normalize(head(inputs.posterior(a)[0]), dim=-1)
    zb = nn.functional.normalize(head(inputs.posterior(b)[0]), dim=-1)
    sim = za @ zb.transpose(-1, -2) / options.temperature
    labels = inputs.labels
    same = labels[..., :, None] == labels[..., None, :]
    valid = inputs.mask(a, b)
    forward = _direction(sim, same, valid, options.class_weight)
    backward = _direction(sim.transpose(-1, -2), same.transpose(-1, -2), valid, options.class_weight)
    return 0.5 * (forward + backward)


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm(FAMILY, "unordered", contrastive_alignment, weight=0.0, batch_coupled=True,
                      options=Options, build=build,
                      description="instance- and class-level contrastive alignment of the latents (CE-GZSL, CVPR 2021)"))
