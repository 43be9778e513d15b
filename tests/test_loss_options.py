"""Options a recipe selects beyond CADA-VAE: per-family tuple scaling, loss-family options (the
contrastive temperature and class-level positives), the center_l2 normaliser, input dropout and a
recipe's modality options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_toy_data

import mmalign
from mmalign.plugins import get_catalog
from mmalign.model import AlignedVAE, LossWeights
from mmalign.losses import info_nce
from mmalign.modality import FeatureModality
from mmalign.normalise import make_normaliser

pytestmark = pytest.mark.filterwarnings("ignore:training for")


class Vec(FeatureModality):
    kind = "vec"


def model(dims, **kwargs):
    torch.manual_seed(0)
    # the parameter-free families, contrastive included (a model built from a config leaves out the
    # families it never weighs; these tests weigh them through LossWeights directly)
    kwargs.setdefault("terms", [t for t in get_catalog().losses.values() if t.build is None and not t.optional])
    return AlignedVAE({n: Vec(name=n, hidden=(16, 12)) for n in dims}, dims, latent_size=6, **kwargs)


def batch(dims, b=8):
    g = torch.Generator().manual_seed(1)
    return {n: torch.rand(b, d, generator=g) for n, d in dims.items()}


W = LossWeights(kl=0.3, cross=1.5, align=2.0)


def loss(m, x):
    return m(x, W, generator=torch.Generator().manual_seed(0))


def test_tuple_scaling_pair_is_sum_at_m2_and_scales_each_family_at_m3():
    two = {"img": 10, "att": 5}
    x = batch(two)
    assert loss(model(two), x)["loss"] == loss(model(two, tuple_scaling="pair"), x)["loss"]  # bit-identical
    three = {"img": 10, "att": 5, "txt": 7}
    x = batch(three)
    t = loss(model(three), x)
    family = lambda f: sum(v for k, v in t.items() if k.startswith(f + "/"))  # noqa: E731
    pair = loss(model(three, tuple_scaling="pair"), x)["loss"]
    # recon and kl: 2 of 3 modalities' worth; cross: 2 of 6 pairs; align: 1 of 3 pairs
    expected = (family("recon") + 0.3 * family("kl")) * 2 / 3 + 1.5 * family("cross") * 2 / 6 + 2.0 * family("align") / 3
    torch.testing.assert_close(pair, expected, rtol=1e-5, atol=1e-3)
    mean = loss(model(three, tuple_scaling="mean"), x)["loss"]
    expected = (family("recon") + 0.3 * family("kl")) / 3 + 1.5 * family("cross") / 6 + 2.0 * family("align") / 3
    torch.testing.assert_close(mean, expected, rtol=1e-5, atol=1e-3)
    with pytest.raises(mmalign.ConfigError, match="tuple_scaling"):
        model(two, tuple_scaling="max")


def test_loss_options_unknown_family_or_option_is_a_config_error_naming_the_key():
    every = [t for t in get_catalog().losses.values() if t.build is None]
    with pytest.raises(mmalign.ConfigError, match="loss_options.nosuch"):
        model({"a": 3, "b": 4}, loss_options={"nosuch": {}}, terms=every)
    with pytest.raises(mmalign.ConfigError, match="loss_options.contrastive'.*'temp': unknown key"):
        model({"a": 3, "b": 4}, loss_options={"contrastive": {"temp": 0.5}}, terms=every)
    m = model({"a": 3, "b": 4}, loss_options={"contrastive": {"temperature": 0.5}}, terms=every)
    assert m.loss_options["contrastive"].model_dump() == {"temperature": 0.5, "positives": "row"}


def test_contrastive_temperature_option_changes_the_term():
    dims = {"a": 3, "b": 4}
    x = batch(dims)
    w = LossWeights(contrastive=1.0)
    base = model(dims)(x, w, generator=torch.Generator().manual_seed(0))["contrastive/a|b"]
    hot = model(dims, loss_options={"contrastive": {"temperature": 1.0}})(x, w, generator=torch.Generator().manual_seed(0))
    m = model(dims)
    mu_a, mu_b = m.encode("a", x["a"])[0], m.encode("b", x["b"])[0]
    torch.testing.assert_close(hot["contrastive/a|b"], info_nce(mu_a, mu_b, 1.0).sum(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(base, hot["contrastive/a|b"])


def test_contrastive_class_positives_ignore_repeated_classes_as_negatives():
    dims = {"a": 3, "b": 4}
    x = batch(dims, b=6)
    x = {k: v[[0, 1, 2, 0, 1, 2]] for k, v in x.items()}  # every class twice in the batch
    opts = {"contrastive": {"positives": "class"}}
    w = LossWeights(contrastive=1.0)
    cls = model(dims, loss_options=opts)(x, w, generator=torch.Generator().manual_seed(0))["contrastive/a|b"]
    row = model(dims)(x, w, generator=torch.Generator().manual_seed(0))["contrastive/a|b"]
    m = model(dims)
    mu_a, mu_b = m.encode("a", x["a"])[0], m.encode("b", x["b"])[0]
    sim = torch.nn.functional.normalize(mu_a, dim=1) @ torch.nn.functional.normalize(mu_b, dim=1).T / 0.1
    same = torch.tensor([[i % 3 == j % 3 and i != j for j in range(6)] for i in range(6)])
    # by hand: a row's copy of its own class is neither positive nor negative; other classes count as often as they occur
    by_hand = 0.5 * (torch.logsumexp(sim.masked_fill(same, -1e4), 1) + torch.logsumexp(sim.T.masked_fill(same, -1e4), 1))
    torch.testing.assert_close(cls, (by_hand - sim.diagonal()).sum(), rtol=1e-5, atol=1e-4)
    assert row > cls  # row-level InfoNCE counts each class's copy as a negative


def test_center_l2_normaliser_fits_on_training_rows_and_round_trips_its_state():
    x = torch.tensor([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])
    z = make_normaliser("center_l2").fit(x)
    out = z(x)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(out[0], torch.nn.functional.normalize(x[0] - x.mean(0), dim=0))
    again = make_normaliser("center_l2")
    again.load_state(z.state())
    torch.testing.assert_close(again(x), out)
    torch.testing.assert_close(again.inverse(torch.zeros(1, 2)), x.mean(0, keepdim=True))
    with pytest.raises(mmalign.CheckpointError, match="'mean'"):
        again.load_state({})


def fit(specs, **config):
    cfg = {"seed": 0, "device": "cpu", "latent_size": 4, "training": {"epochs": 2, "batch_size": 16}, **config}
    a = mmalign.Aligner(specs, cfg)
    a.fit(make_toy_data(), progress=False)
    return a


def test_input_dropout_is_seeded_and_off_at_inference():
    specs = [{"kind": "image_features", "hidden": (16, 12), "input_dropout": 0.5}, {"kind": "attributes", "hidden": (8, 8)}]
    a, b = fit(specs), fit(specs)
    plain = fit([{"kind": "image_features", "hidden": (16, 12)}, {"kind": "attributes", "hidden": (8, 8)}])
    rows = make_toy_data().sample_features["features"][:4]
    np.testing.assert_array_equal(a.embed("image_features", rows), b.embed("image_features", rows))  # one seed, one result
    assert not np.allclose(a.embed("image_features", rows), plain.embed("image_features", rows))
    np.testing.assert_array_equal(a.embed("image_features", rows), a.embed("image_features", rows))  # eval: no dropout
    with pytest.raises(mmalign.ConfigError, match="input_dropout"):
        mmalign.Aligner([{"kind": "attributes", "input_dropout": 1.5}, "image_features"])


def test_recipe_modality_options_apply_under_the_users_options():
    from mmalign.aligner import apply_recipe_sizes
    from mmalign.plugins import get_catalog

    att = get_catalog().create("attributes")
    assert apply_recipe_sizes(att, "cub_text_contrastive").options.normaliser == "center_l2"
    assert att.options.input_dropout > 0 and att.options.hidden == (512, 512)
    mine = get_catalog().create("attributes", options={"normaliser": "none"})
    assert apply_recipe_sizes(mine, "cub_text_contrastive").options.normaliser == "none"
    assert apply_recipe_sizes(get_catalog().create("attributes"), "cada_vae").options.normaliser == "none"
