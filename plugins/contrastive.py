"""An alternative alignment family: symmetric InfoNCE between the posterior means of every pair of
modalities (row ``i`` of both modalities is the positive pair, the rest of the batch the
negatives), with cosine similarity at temperature 0.1.

Registered through the ``register_losses`` hook exactly as a third-party plugin would. Its weight is
0 in the CADA-VAE recipe, so CADA results are untouched; turn it on with, for example,
``training.warmup.contrastive = {start = 6, end = 22, factor = 10.0}``.
"""

from __future__ import annotations

import mmalign
from mmalign.losses import info_nce
from mmalign.terms import LossTerm, TermInputs

TEMPERATURE = 0.1


def contrastive(inputs: TermInputs, a: str, b: str):
    (mu_a, _), (mu_b, _) = inputs.posterior(a), inputs.posterior(b)
    return info_nce(mu_a, mu_b, TEMPERATURE, inputs.mask(a, b))


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm("contrastive", "unordered", contrastive, weight=0.0, batch_coupled=True,
                      description=f"symmetric InfoNCE between posterior means (temperature {TEMPERATURE})"))
