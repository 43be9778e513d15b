"""Latent classification consistency: a seen-class classifier on every modality's latent, and the
cross-decoded features classified too.

After f-CLSWGAN (Y. Xian, T. Lorenz, B. Schiele, Z. Akata, "Feature Generating Networks for
Zero-Shot Learning", CVPR 2018: generated features must be classified correctly) and TF-VAEGAN
(S. Narayan, A. Gupta, F. S. Khan, C. G. M. Snoek, L. Shao, "Latent Embedding Feedback and
Discriminative Features for Zero-Shot Classification", ECCV 2020: a semantic/classification
feedback on a VAE's latent). Per modality ``a`` and sample ``i`` of class ``y_i`` (its position
among the training classes):

```python
value_i = CE(latent_head(z_a,i), y_i)
          + cross_weight * mean_{b != a} CE(feature_head_a(D_a(z_b,i)), y_i)
          + cross_weight * CE(feature_head_a(x_a,i), y_i)          (per-sample modalities)
```

``z`` are the sampled latents; one latent head (``Linear(latent, K)``, or an MLP with ``hidden >
0``) is shared by every modality, so all modalities' latents must separate the seen classes the
same way; a feature head per per-sample modality (``Linear(d_a, K)``) learns from the real
features and judges the features decoded from the other modalities' latents. The heads are the
family's own modules (saved with the model) and are trained with the VAE. Registered through
``register_losses``; weight 0 unless a recipe weighs it (``registry/recipes/cada_classify.toml``).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt
from torch import nn

import mmalign
from mmalign.terms import LossTerm, ModuleSpec, TermInputs

FAMILY = "classify"


class Options(BaseModel):
    """Options of ``classify`` (recipe table ``[loss_options.classify]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hidden: NonNegativeInt = Field(0, description="Hidden width of the latent head (0: a linear head).")
    cross_weight: NonNegativeFloat = Field(1.0, description="Weight of the feature-space terms (0: latents only).")


class Heads(nn.Module):
    """The latent head and one feature head per modality named in ``features``."""

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__()
        if spec.num_classes < 2:
            raise ValueError(f"loss family {FAMILY!r} needs at least two training classes, got {spec.num_classes}")
        k, width = spec.num_classes, spec.options.hidden
        self.latent = (nn.Linear(spec.latent_size, k) if width == 0 else
                       nn.Sequential(nn.Linear(spec.latent_size, width), nn.ReLU(), nn.Linear(width, k)))
        self.features = nn.ModuleDict({n: nn.Linear(spec.dims[n], k) for n in spec.names})


def _ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(S, B, K), (S, B) -> (S, B)`` cross-entropy per sample."""
    return nn.functional.cross_entropy(logits.flatten(0, -2), target.flatten(), reduction="none").view(target.shape)


def classification(inputs: TermInputs, a: str) -> torch.Tensor:
    options, heads, y = inputs.options(FAMILY), inputs.module(FAMILY), inputs.seen_labels
    value = _ce(heads.latent(inputs.latents[a]), y)
    if options.cross_weight > 0 and inputs.modalities[a].granularity == "sample":
        head = heads.features[a]
        others = [b for b in inputs.names if b != a]
        cross = sum(_ce(head(inputs.decoded(b, a)), y) for b in others) / max(len(others), 1)
        value = value + options.cross_weight * (cross + _ce(head(inputs.x[a]), y))
    return value


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm(FAMILY, "each", classification, weight=0.0, decodes="cross", options=Options, build=Heads,
                      description="seen-class classification of each latent and of cross-decoded features "
                                  "(f-CLSWGAN, CVPR 2018; TF-VAEGAN, ECCV 2020)"))
