"""The CADA-VAE recipe against the authors' code.

Every expected value below is written down from the authors' released PyTorch code
(edgarschnfld/CADA-VAE-PyTorch, master, 2020-09; transcribed in the development notes
``REFERENCE_PROTOCOL.md``), never read from ``registry/recipes/cada_vae.toml``: a typo in the recipe
fails here.
"""

from __future__ import annotations

import pytest

import mmalign
from mmalign.protocols import fixed_epochs
from mmalign.protocols.classifier import ClassifierHparams
from mmalign.recipes import load_recipe

# model.py / config of the authors' code
LATENT = 64
HIDDEN = {"image_features": (1560, 1660), "attributes": (1450, 665), "sentences": (1450, 665)}
VAE_OPTIMISER = {"lr": 1.5e-4, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": True, "weight_decay": 0.0}
VAE_EPOCHS, VAE_BATCH = 100, 50
# warm-up (start epoch, end epoch, factor) of the KL, cross-reconstruction and distance weights
WARMUP = {"kl": (0, 93, 0.25), "cross": (21, 75, 2.37), "align": (6, 22, 8.13)}
# final classifier: Adam lr 1e-3, betas (0.5, 0.999), batch 32
CLASSIFIER = {"lr": 1e-3, "betas": (0.5, 0.999), "batch_size": 32}
# latents per class: (seen images, seen class embeddings, unseen class embeddings, unseen images)
LATENTS = {"gzsl": (200, 0, 400, 0), "gzsl_fewshot": (200, 0, 200, 200), "zsl": (0, 0, 200, 0),
           "zsl_fewshot": (0, 0, 200, 200)}
SHOTS = (0, 1, 2, 5, 10)
# classifier epochs after which the authors report, per data set and setting, for SHOTS
EPOCHS = {
    ("CUB", "gzsl"): (23, 34, 39, 64, 85), ("CUB", "zsl"): (22, 46, 31, 73, 67),
    ("SUN", "gzsl"): (21, 22, 29, 29, 79), ("SUN", "zsl"): (30, 96, 61, 78, 94),
    ("AWA1", "gzsl"): (33, 40, 56, 89, 100), ("AWA1", "zsl"): (25, 81, 59, 62, 50),
    ("AWA2", "gzsl"): (29, 44, 69, 99, 86), ("AWA2", "zsl"): (39, 96, 79, 100, 78),
}


def _check_warmup(warmup: dict) -> None:
    """CADA's three ramps; any other loss family the recipe names is switched off (weight 0)."""
    for family, expected in WARMUP.items():
        ramp = warmup[family]
        assert (ramp.start, ramp.end, ramp.factor) == expected, family
    others = {k: (r.start, r.end, r.factor) for k, r in warmup.items() if k not in WARMUP}
    assert all(factor == 0 for _, _, factor in others.values()), others


def test_recipe_cada_vae_vae_matches_the_authors_code():
    recipe = load_recipe("cada_vae")
    assert recipe.reparameterization == "cada2019"
    assert recipe.model.latent_size == LATENT and recipe.model.reduction == "sum"
    assert {k: tuple(v) for k, v in recipe.model.hidden.items()} == HIDDEN
    t = recipe.training
    assert (t.epochs, t.batch_size) == (VAE_EPOCHS, VAE_BATCH)
    assert {"lr": t.lr, "betas": tuple(t.betas), "eps": t.eps, "amsgrad": t.amsgrad,
            "weight_decay": t.weight_decay} == VAE_OPTIMISER
    _check_warmup(t.warmup)
    # the authors' weight in epoch e: clip((e - start) / (end - start) * factor, 0, factor)
    kl, cross, align = (t.warmup[k] for k in ("kl", "cross", "align"))
    assert kl.at(0) == 0 and kl.at(50) == pytest.approx(50 / 93 * 0.25) and kl.at(99) == 0.25
    assert cross.at(21) == 0 and cross.at(48) == pytest.approx(27 / 54 * 2.37) and cross.at(80) == 2.37
    assert align.at(5) == 0 and align.at(14) == pytest.approx(8 / 16 * 8.13) and align.at(22) == 8.13


def test_recipe_cada_vae_classifier_matches_the_authors_code():
    c = load_recipe("cada_vae").classifier
    assert {"lr": c.lr, "betas": tuple(c.betas), "batch_size": c.batch_size} == CLASSIFIER
    assert {k: tuple(v) for k, v in c.latents.items()} == LATENTS
    assert tuple(c.shots) == SHOTS
    assert {(ds, s): tuple(getattr(table, s)) for ds, table in c.epochs.items() for s in ("gzsl", "zsl")} == EPOCHS


def test_recipe_cada_vae_reaches_the_aligner_and_the_protocol():
    """What a user gets without options is the authors' setting, not just what the file says."""
    aligner = mmalign.Aligner(["image_features", "attributes", "sentences"])
    cfg = aligner.config
    assert cfg.latent_size == LATENT and cfg.reparameterization == "cada2019" and cfg.reduction == "sum"
    t = cfg.training
    assert (t.epochs, t.batch_size, t.lr, tuple(t.betas), t.eps, t.amsgrad, t.weight_decay) == (
        VAE_EPOCHS, VAE_BATCH, *VAE_OPTIMISER.values())
    _check_warmup(t.warmup)
    assert {n: m.options.hidden for n, m in aligner.modalities.items()} == HIDDEN
    h = ClassifierHparams.from_recipe(load_recipe("cada_vae"))
    assert (h.lr, h.betas, h.batch_size) == tuple(CLASSIFIER.values())


@pytest.mark.parametrize("dataset,setting", sorted(EPOCHS))
def test_fixed_epochs_are_the_authors_table(dataset, setting):
    assert [fixed_epochs(dataset, setting, k) for k in SHOTS] == list(EPOCHS[dataset, setting])
