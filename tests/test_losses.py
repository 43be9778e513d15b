import math

import pytest
import torch

from mmalign.losses import info_nce, kl_to_standard_normal, reparameterize, wasserstein2
from mmalign.ramps import Ramp


def ramp(epoch, start, end, factor):
    return Ramp(start=start, end=end, factor=factor).at(epoch)


def _gauss(seed, b=5, d=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g) * 0.5


def test_wasserstein_zero_for_equal_gaussians():
    mu, lv = _gauss(0)
    assert torch.allclose(wasserstein2(mu, lv, mu, lv), torch.zeros(5))


def test_wasserstein_symmetric():
    (mu_a, lv_a), (mu_b, lv_b) = _gauss(1), _gauss(2)
    assert torch.allclose(wasserstein2(mu_a, lv_a, mu_b, lv_b), wasserstein2(mu_b, lv_b, mu_a, lv_a))


def test_wasserstein_matches_closed_form():
    # W2 between diagonal Gaussians: sqrt(|mu1-mu2|^2 + |s1-s2|^2), s = sqrt(var)
    mu_a, mu_b = torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 5.0]])
    var_a, var_b = torch.tensor([[4.0, 1.0]]), torch.tensor([[1.0, 9.0]])
    expected = math.sqrt(3**2 + 4**2 + (2 - 1) ** 2 + (1 - 3) ** 2)
    got = wasserstein2(mu_a, var_a.log(), mu_b, var_b.log())
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_kl_matches_torch_distributions():
    mu, lv = _gauss(3)
    post = torch.distributions.Normal(mu, torch.exp(0.5 * lv))
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(post, prior).sum(dim=1)
    assert torch.allclose(kl_to_standard_normal(mu, lv), expected, atol=1e-5)


def test_reparameterize_cada2019_shares_one_noise_scalar_per_sample():
    mu, lv = _gauss(4)
    z = reparameterize(mu, lv, "cada2019", torch.Generator().manual_seed(0))
    eps = (z - mu) / torch.exp(lv)  # sigma = exp(logvar) in the reference code
    assert torch.allclose(eps, eps[:, :1].expand_as(eps), atol=1e-5)


def test_reparameterize_standard_uses_half_logvar_and_independent_noise():
    mu, lv = _gauss(5, b=4000, d=3)
    z = reparameterize(mu, lv, "standard", torch.Generator().manual_seed(0))
    eps = (z - mu) / torch.exp(0.5 * lv)
    assert abs(eps.std().item() - 1) < 0.05
    assert not torch.allclose(eps[:, 0], eps[:, 1])


def test_ramp_matches_reference_warmup():
    assert ramp(0, 0, 93, 0.25) == 0
    assert ramp(93, 0, 93, 0.25) == 0.25
    assert ramp(99, 0, 93, 0.25) == 0.25
    assert ramp(20, 21, 75, 2.37) == 0
    assert ramp(48, 21, 75, 2.37) == pytest.approx(27 / 54 * 2.37)
    assert ramp(14, 6, 22, 8.13) == pytest.approx(8 / 16 * 8.13)


def test_ramp_constant_and_first_active_epoch():
    assert Ramp(factor=0.7).at(0) == 0.7 and Ramp(factor=0.7).first_active_epoch() == 0
    assert Ramp(factor=0.0).first_active_epoch() is None
    assert Ramp(start=21, end=75, factor=2.37).first_active_epoch() == 22  # weight 0 at epoch 21 itself
    assert Ramp(start=21, end=75, factor=2.37).first_active_epoch(epochs=10) is None
    with pytest.raises(ValueError, match="both"):
        Ramp(start=1, factor=1.0)


def test_info_nce_matches_cross_entropy_both_ways():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    logits = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T / 0.1
    target = torch.arange(6)
    expected = 0.5 * (torch.nn.functional.cross_entropy(logits, target, reduction="none")
                      + torch.nn.functional.cross_entropy(logits.T, target, reduction="none"))
    assert torch.allclose(info_nce(a, b, 0.1), expected, atol=1e-5)
    # identical embeddings with distinct directions score below a shuffled pairing
    assert info_nce(a, a, 0.1).mean() < info_nce(a, a[torch.randperm(6, generator=g)], 0.1).mean()


def test_info_nce_absent_rows_are_nobody_s_negative():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    valid = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0])
    masked = info_nce(a, b, 0.5, valid)
    keep = valid.bool()
    assert torch.allclose(masked[keep], info_nce(a[keep], b[keep], 0.5), atol=1e-5)
    assert torch.isfinite(info_nce(a, b, 0.5, torch.zeros(5))).all()
