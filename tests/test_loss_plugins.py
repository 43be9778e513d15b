"""Loss families through the register_losses hook: a term defined here trains end to end; the
built-in InfoNCE family leaves CADA-VAE untouched at its recipe weight 0 and aligns when weighted."""

from __future__ import annotations

import copy
import types

import pytest
import torch
from conftest import make_toy_data

import mmalign
from mmalign.plugins import add_plugin, remove_plugin
from mmalign.terms import LossTerm
from mmalign.training import train

SPECS = [{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)}]


def mean_gap(inputs, a, b):
    """Per sample: the squared distance between the two posterior means."""
    (mu_a, _), (mu_b, _) = inputs.posterior(a), inputs.posterior(b)
    return (mu_a - mu_b).pow(2).sum(dim=-1)


@mmalign.hookimpl
def register_losses(register):
    register(LossTerm("meangap", "unordered", mean_gap, weight=0.0, description="squared distance of the means"))


@pytest.fixture
def meangap_plugin():
    plugin = types.SimpleNamespace(register_losses=register_losses)
    catalog = add_plugin(plugin, "test-meangap")
    yield catalog
    remove_plugin("test-meangap")


def aligner(**training):
    cfg = {"seed": 0, "device": "cpu", "latent_size": 8, "training": {"epochs": 3, "batch_size": 16, **training}}
    return mmalign.Aligner(SPECS, cfg)


def test_loss_plugin_term_from_a_test_file_trains_end_to_end(meangap_plugin):
    assert meangap_plugin.loss_plugins["meangap"] == "test-meangap"
    data = make_toy_data()
    off = aligner(warmup={"meangap": {"start": 5, "end": 6, "factor": 50.0}})  # weight 0 in all 3 epochs
    h_off = off.fit(data, progress=False)
    on = aligner(warmup={"meangap": {"factor": 50.0}})
    h_on = on.fit(data, progress=False)
    name = "meangap/attributes|image_features"
    assert name in h_on[-1].terms and h_on[-1].weights["meangap"] == 50.0
    # logged while its weight is 0 in a run that weighs it later; trained (and so smaller) when weighted
    assert h_off[-1].weights["meangap"] == 0.0
    assert h_on[-1].terms[name] < 0.75 * h_off[-1].terms[name]
    # its weighted value is part of the loss
    recon = sum(v for k, v in h_on[0].terms.items() if k.startswith("recon/"))
    assert h_on[0].terms["loss"] >= recon


def test_family_a_recipe_never_weighs_is_neither_computed_nor_logged(meangap_plugin):
    """The rule of the register_losses hook: a family whose schedule is 0 at every epoch (its
    default weight 0 and no ramp, or a ramp of factor 0) is left out of the model."""
    data = make_toy_data()
    calls = []
    term = meangap_plugin.losses["meangap"]
    original = term.per_sample
    object.__setattr__(term, "per_sample", lambda inputs, a, b: calls.append(1) or original(inputs, a, b))
    try:
        for warmup in ({}, {"meangap": {"factor": 0.0}}):
            a = aligner(**({"warmup": warmup} if warmup else {}))
            history = a.fit(data, progress=False)
            assert "meangap" not in a.model.families and not calls
            assert not any(k.startswith("meangap/") for k in history[-1].terms) and "meangap" not in history[-1].weights
        aligner(warmup={"meangap": {"factor": 1.0}}).fit(data, progress=False)
        assert calls
    finally:
        object.__setattr__(term, "per_sample", original)


@mmalign.hookimpl(specname="register_losses")
def register_meangap_again(register):
    register(LossTerm("meangap", "unordered", mean_gap))


def test_loss_plugin_family_registered_twice_names_both_plugins(meangap_plugin):
    again = types.SimpleNamespace(register_losses=register_meangap_again)
    with pytest.raises(mmalign.PluginError, match="'meangap' is registered twice.*test-meangap.*second"):
        add_plugin(again, "second")


def test_loss_schedule_unknown_family_is_a_config_error_naming_the_key():
    with pytest.raises(mmalign.ConfigError, match="training.warmup.nosuch"):
        aligner(warmup={"nosuch": {"factor": 1.0}})


def test_loss_pair_weight_naming_no_term_is_a_config_error():
    a = mmalign.Aligner(SPECS, {"device": "cpu", "pair_weights": {"cross/attributes->img": 0.5}})
    with pytest.raises(mmalign.ConfigError, match="pair_weights.cross/attributes->img"):
        a.build({"image_features": 40, "attributes": 10})


def test_contrastive_at_recipe_weight_zero_leaves_cada_untouched():
    data = make_toy_data()
    a = aligner(epochs=3, warmup={"cross": {"start": 0, "end": 2, "factor": 2.0}})
    tensors = a.training_tensors(data)
    without = a.build(a.dims)
    assert "contrastive" not in without.families  # weight 0 in the recipe: not even built
    model = copy.deepcopy(without)  # the same model evaluating the family at weight 0 (for the log)
    model.terms = [*without.terms, mmalign.get_catalog().losses["contrastive"]]
    model.families = [t.family for t in model.terms]
    config = a.config.training
    plain = config.model_copy(update={"warmup": {k: v for k, v in config.warmup.items() if k != "contrastive"}})
    h_with = train(model, tensors, config, torch.Generator().manual_seed(0), progress=False)
    h_without = train(without, tensors, plain, torch.Generator().manual_seed(0), progress=False)
    assert "contrastive/attributes|image_features" in h_with[-1].terms
    for p, q in zip(model.parameters(), without.parameters()):
        assert torch.equal(p, q)
    assert [e.terms["loss"] for e in h_with] == [e.terms["loss"] for e in h_without]


def test_contrastive_weighted_pulls_matching_means_together():
    data = make_toy_data()
    # 20 short epochs: CADA's alignment terms are still in their warm-up, the InfoNCE term is not
    cada = aligner(epochs=20)
    cada.fit(data, progress=False)
    nce = aligner(epochs=20, warmup={"contrastive": {"factor": 5.0}})
    history = nce.fit(data, progress=False)
    term = "contrastive/attributes|image_features"
    assert history[-1].terms[term] < history[0].terms[term]

    def retrieval_accuracy(al):  # class means of images against class attributes, cosine
        idx = data.split("trainval")
        mu_img, _ = al.encode("image_features", data.sample_features["features"][idx])
        labels = torch.as_tensor(data.labels[idx])
        classes = labels.unique()
        mu_att, _ = al.encode("attributes", data.class_features["attributes"][classes.numpy()])
        centroids = torch.stack([mu_img[labels == c].mean(0) for c in classes])
        sim = torch.nn.functional.normalize(centroids, dim=1) @ torch.nn.functional.normalize(mu_att, dim=1).T
        return (sim.argmax(1) == torch.arange(len(classes))).float().mean().item()

    assert retrieval_accuracy(nce) > retrieval_accuracy(cada)
    assert retrieval_accuracy(nce) >= 0.75
