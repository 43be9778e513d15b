"""Joint-posterior loss families (MVAE / MoPoE style): any subset of the modalities encodes, as
the product of its experts (`mmalign.posterior`), and every modality decodes from it.

* ``joint_cross/j``: decode modality ``j`` from a sample of the joint posterior of each subset
  (option ``subsets``: ``"all"`` = every subset of at least two modalities, the mixture components
  MoPoE adds to the single modalities, which ``recon`` and ``cross`` already cover; ``"full"`` =
  only all modalities together, MVAE's joint posterior), mean over the subsets.
* ``joint_align/i``: the 2-Wasserstein distance between modality ``i``'s posterior and the joint
  posterior of the same subsets (mean over them), pulling every expert towards the joint.

A subset's sample uses the noise of its first modality of this step. Both families are *optional*:
a model has them only when its config names them (``training.warmup`` or ``loss_options``), so
CADA-VAE's models and logs are unchanged.
"""

from __future__ import annotations

import torch

import mmalign
from mmalign.losses import apply_noise, wasserstein2
from mmalign.posterior import subset_posterior, subsets
from mmalign.terms import LossTerm, TermInputs

OPTIONS = {"subsets": "all"}


def joint_posteriors(inputs: TermInputs, family: str) -> dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Each subset's joint ``(mu, logvar, sample)`` for this step (computed once per family)."""
    which = inputs.option(family, "subsets", "all")
    key = ("joint", which)
    if key not in inputs.cache:
        out = {}
        for subset in subsets(inputs.names, which):
            mu, logvar = subset_posterior(inputs.posteriors, subset, inputs.masks)
            eps = inputs.noise[subset[0]]
            out[subset] = (mu, logvar, apply_noise(mu, logvar, inputs.reparameterization, eps))
        inputs.cache[key] = out
    return inputs.cache[key]


def joint_cross(inputs: TermInputs, target: str):
    loss = inputs.modalities[target].reconstruction_loss
    joint = joint_posteriors(inputs, "joint_cross")
    values = [inputs.per_sample(loss, inputs.decode(target, z), inputs.x[target]) for _, _, z in joint.values()]
    return torch.stack(values).mean(dim=0)


def joint_align(inputs: TermInputs, name: str):
    mu, logvar = inputs.posterior(name)
    joint = joint_posteriors(inputs, "joint_align")
    return torch.stack([wasserstein2(mu, logvar, m, lv) for m, lv, _ in joint.values()]).mean(dim=0)


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm("joint_cross", "each", joint_cross, weight=0.0, options=dict(OPTIONS), optional=True,
                      description="decode each modality from the product-of-experts posterior of modality subsets"))
    register(LossTerm("joint_align", "each", joint_align, weight=0.0, options=dict(OPTIONS), optional=True,
                      description="2-Wasserstein distance from each posterior to the subsets' joint posteriors"))
