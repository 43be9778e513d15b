"""Joint posteriors: the product of experts against its closed form, the optional joint loss
families, and encoding / translating / retrieving from a subset of modalities through the Aligner."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_toy_data

import mmalign
from mmalign.model import LossWeights
from mmalign.posterior import product_of_experts, subsets

SPECS = [{"kind": "image_features", "hidden": (32, 24)}, {"kind": "attributes", "hidden": (16, 12)},
         {"kind": "attributes", "name": "att2", "source": "att2", "hidden": (16, 12)}]
pytestmark = pytest.mark.filterwarnings("ignore:training for 2 epoch")


def test_posterior_product_of_two_experts_is_the_precision_weighted_gaussian():
    mu1, lv1 = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, float(np.log(4.0))]])
    mu2, lv2 = torch.tensor([[3.0, 2.0]]), torch.tensor([[float(np.log(0.5)), 0.0]])
    mu, lv = product_of_experts([(mu1, lv1), (mu2, lv2)])
    precision = 1 + torch.exp(-lv1) + torch.exp(-lv2)  # the N(0, I) prior is the third expert
    torch.testing.assert_close(lv, -torch.log(precision))
    torch.testing.assert_close(mu, (mu1 * torch.exp(-lv1) + mu2 * torch.exp(-lv2)) / precision)
    # without the prior, one expert is itself
    alone = product_of_experts([(mu1, lv1)], prior=False)
    torch.testing.assert_close(alone[0], mu1)
    torch.testing.assert_close(alone[1], lv1)


def test_posterior_masked_expert_is_dropped_row_by_row():
    g = torch.Generator().manual_seed(0)
    a = (torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g))
    b = (torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g))
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    mu, lv = product_of_experts([a, b], [None, mask])
    only_a = product_of_experts([a])
    both = product_of_experts([a, b])
    for row in range(4):
        expected = both if mask[row] else only_a
        torch.testing.assert_close(mu[row], expected[0][row])
        torch.testing.assert_close(lv[row], expected[1][row])


def test_posterior_subsets_all_and_full():
    assert subsets(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c"), ("a", "b", "c")]
    assert subsets(["a", "b", "c"], "full") == [("a", "b", "c")]
    with pytest.raises(mmalign.ConfigError, match="subsets"):
        subsets(["a", "b"], "some")


def aligner(**config):
    cfg = {"seed": 0, "device": "cpu", "latent_size": 8, "training": {"epochs": 2, "batch_size": 16}}
    return mmalign.Aligner(SPECS, mmalign.config.merge_tables(cfg, config))


def three_modality_data():
    data = make_toy_data()
    data.class_features["att2"] = np.random.default_rng(1).random((12, 7)).astype(np.float32)
    return data


def test_joint_families_are_optional_and_train_when_named():
    plain = aligner()
    assert not any(t.family.startswith("joint_") for t in plain.loss_terms)  # CADA-VAE's models are unchanged
    joint = aligner(training={"warmup": {"joint_cross": {"factor": 1.0}, "joint_align": {"factor": 1.0}}},
                    loss_options={"joint_cross": {"subsets": "full"}})
    history = joint.fit(three_modality_data(), progress=False)
    terms = history[-1].terms
    assert {"joint_cross/image_features", "joint_cross/att2", "joint_align/attributes"} <= set(terms)
    assert all(np.isfinite(v) for v in terms.values())
    assert terms["loss"] > sum(v for k, v in terms.items() if k.startswith("recon/"))


def test_joint_cross_decodes_every_modality_from_the_subsets_product():
    a = aligner(training={"warmup": {"joint_cross": {"factor": 1.0}}})
    data = three_modality_data()
    a.fit(data, progress=False)
    model = a.model
    batch = {n: torch.rand(5, a.dims[n]) for n in a.names}
    terms = model(batch, LossWeights(joint_cross=1.0), generator=torch.Generator().manual_seed(0))
    # by hand: the mean over the four subsets of >= 2 modalities of |x_t - D_t(z_S)|, z_S the product's sample
    g = torch.Generator().manual_seed(0)
    eps = {n: torch.randn(5, 1, generator=g) for n in a.names}
    posts = {n: model.encode(n, batch[n]) for n in a.names}
    values = []
    for subset in subsets(a.names):
        mu, lv = product_of_experts([posts[n] for n in subset])
        z = mu + torch.exp(lv) * eps[subset[0]]
        values.append((model.decoders["att2"](z) - batch["att2"]).abs().sum(dim=1))
    torch.testing.assert_close(terms["joint_cross/att2"], torch.stack(values).mean(0).sum(), rtol=1e-5, atol=1e-4)


def test_aligner_subset_embeds_translates_and_retrieves_as_product_of_experts():
    a = aligner()
    data = three_modality_data()
    a.fit(data, progress=False)
    rows = {"attributes": data.class_features["attributes"][:5], "att2": data.class_features["att2"][:5]}
    z = a.embed(["attributes", "att2"], rows)
    expected = product_of_experts([a.encode("attributes", rows["attributes"]), a.encode("att2", rows["att2"])])[0]
    assert isinstance(z, np.ndarray) and z.shape == (5, 8)
    np.testing.assert_allclose(z, expected.numpy(), rtol=1e-6)
    assert not np.allclose(z, a.embed("attributes", rows["attributes"]))
    out = a.translate(("attributes", "att2"), "image_features", rows)
    assert out.shape == (5, a.dims["image_features"])
    idx, scores = a.retrieve(["attributes", "att2"], rows, "attributes", data.class_features["attributes"], k=3)
    assert idx.shape == (5, 3) and np.all(np.diff(scores, axis=1) <= 1e-12)
    zt = a.embed(["attributes", "att2"], {k: torch.as_tensor(v) for k, v in rows.items()})
    assert isinstance(zt, torch.Tensor)
    with pytest.raises(mmalign.DataError, match="dict of rows keyed by exactly"):
        a.embed(["attributes", "att2"], rows["attributes"])
    with pytest.raises(mmalign.DataError, match="same number of rows"):
        a.embed(["attributes", "att2"], {"attributes": rows["attributes"], "att2": rows["att2"][:3]})
