"""The Gaussian mixture that prior=gmm fits to the training codes (models/fitted_prior.py)."""

import math

import pytest
import torch

from vaegan_runner.models.fitted_prior import GaussianMixture


def two_clusters(n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n // 4, 2, generator=g) * torch.tensor([0.3, 0.1]) + torch.tensor([-3.0, 1.0])
    b = torch.randn(3 * n // 4, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])
    return torch.cat([a, b])


def test_em_recovers_a_known_mixture():
    mixture = GaussianMixture.fit(two_clusters(), 2)
    order = mixture.means[:, 0].argsort()
    weights, means, covariances = mixture.weights[order], mixture.means[order], mixture.covariances[order]
    assert weights.tolist() == pytest.approx([0.25, 0.75], abs=0.02)
    assert means.tolist() == [pytest.approx([-3.0, 1.0], abs=0.05), pytest.approx([2.0, -1.0], abs=0.05)]
    assert covariances[0].diagonal().sqrt().tolist() == pytest.approx([0.3, 0.1], rel=0.1)
    assert covariances[1].diagonal().sqrt().tolist() == pytest.approx([0.5, 0.5], rel=0.1)


def test_more_components_fit_clustered_codes_better_and_one_is_the_gaussian_of_the_codes():
    codes = two_clusters()
    one, two = GaussianMixture.fit(codes, 1), GaussianMixture.fit(codes, 2)
    assert two.log_likelihood(codes) > one.log_likelihood(codes) + 0.5
    assert one.means[0].tolist() == pytest.approx(codes.double().mean(0).tolist(), abs=1e-9)
    assert one.covariances[0] == pytest.approx(torch.cov(codes.double().T) * (1 - 1 / len(codes)), abs=1e-4)
    assert math.isfinite(one.log_likelihood(codes))


def test_draws_follow_the_mixture_and_repeat_for_a_seed():
    mixture = GaussianMixture.fit(two_clusters(), 2)
    draws = mixture.sample(20000, torch.Generator().manual_seed(3))
    assert draws.dtype == torch.float32 and draws.shape == (20000, 2)
    assert draws.double().mean(0).tolist() == pytest.approx((mixture.weights @ mixture.means).tolist(), abs=0.05)
    assert (draws[:, 0] < 0).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert torch.equal(draws, mixture.sample(20000, torch.Generator().manual_seed(3)))
    assert not torch.equal(draws, mixture.sample(20000, torch.Generator().manual_seed(4)))


def test_a_fit_is_deterministic_and_refuses_more_components_than_codes():
    codes = two_clusters(400)
    assert torch.equal(GaussianMixture.fit(codes, 3).means, GaussianMixture.fit(codes, 3).means)
    with pytest.raises(ValueError):
        GaussianMixture.fit(codes[:2], 3)
