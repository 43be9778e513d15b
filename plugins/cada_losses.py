"""CADA-VAE's loss families, registered through the ``register_losses`` hook like any plugin's.

For modalities ``i, j``: ``recon/i`` = ``|x_i - D_i(z_i)|``, ``kl/i`` = ``KL(q_i || N(0, I))``,
``cross/i->j`` = ``|x_j - D_j(z_i)|`` (decode ``j`` from the latent of ``i``) and ``align/i|j`` =
the 2-Wasserstein distance between the posteriors. Reconstructions use each modality's own
``reconstruction_loss`` (L1 summed over dimensions for CADA's feature modalities). Default weights
are 1; the recipe (``registry/recipes/cada_vae.toml``) gives the paper's warm-up ramps.
"""

from __future__ import annotations

import mmalign
from mmalign.losses import kl_to_standard_normal, wasserstein2
from mmalign.terms import LossTerm, TermInputs


def reconstruction(inputs: TermInputs, name: str):
    loss = inputs.modalities[name].reconstruction_loss
    return inputs.per_sample(loss, inputs.decoded(name, name), inputs.x[name])


def kl_divergence(inputs: TermInputs, name: str):
    return kl_to_standard_normal(*inputs.posterior(name))


def cross_reconstruction(inputs: TermInputs, source: str, target: str):
    loss = inputs.modalities[target].reconstruction_loss
    return inputs.per_sample(loss, inputs.decoded(source, target), inputs.x[target])


def distribution_alignment(inputs: TermInputs, a: str, b: str):
    return wasserstein2(*inputs.posterior(a), *inputs.posterior(b))


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm("recon", "each", reconstruction, weight=1.0, decodes="own",
                      description="reconstruct each modality from its own latent"))
    register(LossTerm("kl", "each", kl_divergence, weight=1.0,
                      description="KL divergence of each posterior from N(0, I) (the paper's beta)"))
    register(LossTerm("cross", "ordered", cross_reconstruction, weight=1.0, decodes="cross",
                      description="decode each modality from every other modality's latent (gamma)"))
    register(LossTerm("align", "unordered", distribution_alignment, weight=1.0,
                      description="2-Wasserstein distance between the posteriors of each pair (delta)"))
