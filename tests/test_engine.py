"""The engine against an independent hand computation of the reference CADA-VAE train step."""

import pytest
import torch
import torch.nn.functional as F

from mmalign.model import AlignedVAE, LossWeights, ordered_pairs, unordered_pairs
from mmalign.modality import FeatureModality


class Vec(FeatureModality):
    kind = "vec"


def make_model(dims, mode="cada2019", reduction="sum", seed=0):
    torch.manual_seed(seed)
    mods = {n: Vec(name=n, hidden=(16, 12)) for n in dims}
    return AlignedVAE(mods, dims, latent_size=6, reparameterization=mode, reduction=reduction)


def make_batch(dims, b=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(b, d, generator=g) for n, d in dims.items()}


def reference_cada_step(model, x_img, x_att, g, beta, gamma, delta):
    """The reference code's trainstep, written out with torch.nn.functional only."""
    enc_img, enc_att = model.encoders["img"], model.encoders["att"]
    dec_img, dec_att = model.decoders["img"], model.decoders["att"]
    mu_img, logvar_img = enc_img(x_img)
    eps = torch.randn(x_img.shape[0], 1, generator=g).expand(mu_img.shape)
    z_img = mu_img + torch.exp(logvar_img) * eps
    mu_att, logvar_att = enc_att(x_att)
    eps = torch.randn(x_att.shape[0], 1, generator=g).expand(mu_att.shape)
    z_att = mu_att + torch.exp(logvar_att) * eps
    reconstruction = F.l1_loss(dec_img(z_img), x_img, reduction="sum") + F.l1_loss(dec_att(z_att), x_att, reduction="sum")
    cross = F.l1_loss(dec_img(z_att), x_img, reduction="sum") + F.l1_loss(dec_att(z_img), x_att, reduction="sum")
    kld = 0.5 * torch.sum(1 + logvar_att - mu_att.pow(2) - logvar_att.exp()) + 0.5 * torch.sum(
        1 + logvar_img - mu_img.pow(2) - logvar_img.exp()
    )
    distance = torch.sqrt(
        torch.sum((mu_img - mu_att) ** 2, dim=1)
        + torch.sum((torch.sqrt(logvar_img.exp()) - torch.sqrt(logvar_att.exp())) ** 2, dim=1)
    ).sum()
    loss = reconstruction - beta * kld + gamma * cross + delta * distance
    return {"reconstruction": reconstruction, "cross": cross, "kld": kld, "distance": distance, "loss": loss}


def test_engine_m2_cada2019_equals_reference_term_by_term():
    dims = {"img": 20, "att": 7}
    model = make_model(dims)
    batch = make_batch(dims)
    w = LossWeights(kl=0.2, cross=1.3, align=4.1)
    ours = model(batch, w, generator=torch.Generator().manual_seed(7))
    ref = reference_cada_step(model, batch["img"], batch["att"], torch.Generator().manual_seed(7), 0.2, 1.3, 4.1)
    close = dict(rtol=1e-5, atol=1e-4)
    assert torch.allclose(ours["recon/img"] + ours["recon/att"], ref["reconstruction"], **close)
    assert torch.allclose(ours["cross/att->img"] + ours["cross/img->att"], ref["cross"], **close)
    assert torch.allclose(-(ours["kl/img"] + ours["kl/att"]), ref["kld"], **close)
    assert torch.allclose(ours["align/att|img"], ref["distance"], **close)
    assert torch.allclose(ours["loss"], ref["loss"], **close)
    # gradients agree too
    model.zero_grad()
    ours["loss"].backward()
    ours_grad = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    reference_cada_step(model, batch["img"], batch["att"], torch.Generator().manual_seed(7), 0.2, 1.3, 4.1)["loss"].backward()
    for a, b in zip(ours_grad, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_engine_cross_term_decodes_target_from_source_latent():
    dims = {"img": 20, "att": 7}
    model = make_model(dims, mode="standard")
    batch = make_batch(dims)
    model.eval()
    # with zero noise scale the latent is the mean: check cross/att->img by hand
    for enc in model.encoders.values():
        torch.nn.init.constant_(enc.logvar.weight, 0.0)
        torch.nn.init.constant_(enc.logvar.bias, -60.0)
    terms = model(batch, LossWeights(kl=0, cross=0, align=0), generator=torch.Generator().manual_seed(0))
    mu_att, _ = model.encoders["att"](batch["att"])
    expected = (model.decoders["img"](mu_att) - batch["img"]).abs().sum()
    assert torch.allclose(terms["cross/att->img"], expected, rtol=1e-5)


def test_engine_m3_has_six_cross_and_three_alignment_terms():
    dims = {"img": 10, "att": 5, "txt": 8}
    model = make_model(dims)
    terms = model(make_batch(dims), LossWeights(kl=1, cross=1, align=1), generator=torch.Generator().manual_seed(0))
    assert len([k for k in terms if k.startswith("cross/")]) == 6
    assert len([k for k in terms if k.startswith("align/")]) == 3
    assert len([k for k in terms if k.startswith("recon/")]) == 3
    assert len([k for k in terms if k.startswith("kl/")]) == 3
    assert list(terms) == model.term_names()
    assert {"cross/att->txt", "cross/txt->att", "align/att|img", "align/att|txt", "align/img|txt"} <= set(terms)


def test_pairs_helpers_cover_every_pair_once():
    names = ["c", "a", "b", "d"]
    assert len(ordered_pairs(names)) == 12 and len(set(ordered_pairs(names))) == 12
    assert unordered_pairs(names) == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]


def test_engine_mask_drops_only_terms_of_missing_modality():
    dims = {"img": 10, "att": 5, "txt": 8}
    model = make_model(dims)
    batch = make_batch(dims)
    w = LossWeights(kl=0.3, cross=1.0, align=2.0)
    full = model(batch, w, generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([1, 0, 1, 0, 1, 1, 0, 1], dtype=torch.bool)
    masked = model(batch, w, masks={"txt": mask}, generator=torch.Generator().manual_seed(3))
    for name in full:
        if name == "loss":
            continue
        if "txt" in name:
            assert masked[name] < full[name]
        else:
            assert torch.allclose(masked[name], full[name])
    # the masked-out rows of txt do not influence any term
    poisoned = dict(batch, txt=batch["txt"].clone())
    poisoned["txt"][~mask] = 1e3
    again = model(poisoned, w, masks={"txt": mask}, generator=torch.Generator().manual_seed(3))
    for name in masked:
        assert torch.allclose(again[name], masked[name], rtol=1e-5), name
    # all rows missing: every term involving txt is exactly zero
    none = model(batch, w, masks={"txt": torch.zeros(8, dtype=torch.bool)}, generator=torch.Generator().manual_seed(3))
    assert all(none[k] == 0 for k in none if "txt" in k)


def test_engine_mean_reduction_divides_sum_by_batch():
    dims = {"img": 10, "att": 5}
    batch = make_batch(dims)
    s = make_model(dims, reduction="sum")(batch, LossWeights(kl=1, cross=1, align=1), generator=torch.Generator().manual_seed(0))
    m = make_model(dims, reduction="mean")(batch, LossWeights(kl=1, cross=1, align=1), generator=torch.Generator().manual_seed(0))
    for k in s:
        assert torch.allclose(m[k] * 8, s[k], rtol=1e-5), k


def test_engine_pair_weights_scale_one_term():
    dims = {"img": 10, "att": 5}
    batch = make_batch(dims)
    base = make_model(dims)
    w = LossWeights(kl=0.0, cross=1.0, align=0.0)
    t = base(batch, w, generator=torch.Generator().manual_seed(0))
    base.pair_weights = {"cross/att->img": 0.0}
    t2 = base(batch, w, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(t["loss"] - t["cross/att->img"], t2["loss"], rtol=1e-5)
