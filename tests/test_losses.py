import math

import pytest
import torch

from mmalign.losses import kl_to_standard_normal, ramp, reparameterize, wasserstein2


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
