"""An alternative alignment family: symmetric InfoNCE between the posterior means of every pair of
modalities (row ``i`` of both modalities is the positive pair, the rest of the batch the
negatives), with cosine similarity at a temperature (default 0.1).

Options (``loss_options.contrastive`` in a config or recipe):

* ``temperature`` (default 0.1): the softmax temperature of the cosine similarities.
* ``positives`` (default ``"row"``): ``"row"``, every other row of the batch is a negative;
  ``"class"``, rows of the same class are not negatives of each other (class-level alignment:
  two rows are of one class when their per-class modality rows are identical, e.g. two copies of a
  class's attributes; `same_class`), so repeated classes in a batch do not push apart.

Registered through the ``register_losses`` hook exactly as a third-party plugin would. Its weight is
0 in the CADA-VAE recipe, so CADA results are untouched; turn it on with, for example,
``training.warmup.contrastive = {start = 6, end = 22, factor = 10.0}``.
"""

from __future__ import annotations

import torch

import mmalign
from mmalign.errors import ConfigError
from mmalign.losses import info_nce
from mmalign.terms import LossTerm, TermInputs

TEMPERATURE = 0.1
POSITIVES = ("row", "class")


def same_rows(x: torch.Tensor) -> torch.Tensor:
    """``(..., B, B)``: whether rows ``i`` and ``j`` of ``x`` ``(..., B, d)`` are identical."""
    return (x[..., :, None, :] == x[..., None, :, :]).all(dim=-1)


def same_class(inputs: TermInputs, a: str, b: str) -> torch.Tensor:
    """``(S, B, B)``: rows of one class. A per-class modality's rows are equal exactly when the
    classes are (the narrowest such modality of the pair is compared); with two per-sample
    modalities, rows count as one class when they are equal in either."""
    per_class = [n for n in (a, b) if getattr(inputs.modalities[n], "granularity", "sample") == "class"]
    if per_class:
        return same_rows(inputs.x[min(per_class, key=lambda n: inputs.x[n].shape[-1])])
    return same_rows(inputs.x[a]) | same_rows(inputs.x[b])


def contrastive(inputs: TermInputs, a: str, b: str):
    (mu_a, _), (mu_b, _) = inputs.posterior(a), inputs.posterior(b)
    temperature = float(inputs.option("contrastive", "temperature", TEMPERATURE))
    positives = inputs.option("contrastive", "positives", "row")
    if temperature <= 0 or positives not in POSITIVES:
        raise ConfigError(f"config: key 'loss_options.contrastive': temperature must be > 0 and positives one of "
                          f"{POSITIVES}, got {temperature}, {positives!r}")
    shared = None
    if positives == "class":
        shared = same_class(inputs, a, b)
    return info_nce(mu_a, mu_b, temperature, inputs.mask(a, b), shared=shared)


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm("contrastive", "unordered", contrastive, weight=0.0, batch_coupled=True,
                      options={"temperature": TEMPERATURE, "positives": "row"},
                      description=f"symmetric InfoNCE between posterior means (temperature {TEMPERATURE})"))
