"""Loss terms against closed forms and torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from vaegan_runner.models import losses


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(6, 4), torch.randn(6, 4)
    q = D.Normal(mu, (0.5 * logvar).exp())
    expected = D.kl_divergence(q, D.Normal(torch.zeros(4), torch.ones(4))).sum(1)
    assert torch.allclose(losses.kl_to_standard_normal(mu, logvar), expected, atol=1e-5)


def test_bernoulli_and_gaussian_nll_match_log_prob():
    logits, x = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4).round()
    expected = -D.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(losses.bernoulli_nll(logits, x), expected, atol=1e-5)
    mean, log_std = torch.randn(3, 1, 4, 4), torch.tensor([-1.3])
    expected = -D.Normal(mean, log_std.exp()).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(losses.gaussian_nll(mean, log_std, x), expected, atol=1e-4)


@pytest.mark.parametrize(
    "kind,real,fake,d_expected,g_expected",
    [
        ("nonsaturating", 0.0, 0.0, 2 * math.log(2), math.log(2)),
        ("hinge", 1.0, -1.0, 0.0, 1.0),
        ("lsgan", 1.0, 0.0, 0.0, 0.5),
        ("wgan-gp", 2.0, -1.0, -3.0, 1.0),
    ],
)
def test_gan_losses_known_values(kind, real, fake, d_expected, g_expected):
    r, f = torch.full((5, 1), real), torch.full((5, 1), fake)
    assert losses.discriminator_loss(kind, r, f).item() == pytest.approx(d_expected, abs=1e-6)
    assert losses.generator_loss(kind, f).item() == pytest.approx(g_expected, abs=1e-6)


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
    w = torch.randn(12)
    w = w / w.norm()
    critic = lambda x: x.flatten(1) @ w  # noqa: E731  gradient norm is exactly 1 everywhere
    penalty = losses.gradient_penalty(critic, torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2))
    assert penalty.item() == pytest.approx(0.0, abs=1e-8)
    penalty = losses.gradient_penalty(lambda x: 3 * critic(x), torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2))
    assert penalty.item() == pytest.approx(4.0, rel=1e-5)


def test_reparameterize_has_the_right_moments():
    torch.manual_seed(0)
    mu, logvar = torch.full((200000, 1), 1.5), torch.full((200000, 1), math.log(4.0))
    z = losses.reparameterize(mu, logvar)
    assert z.mean().item() == pytest.approx(1.5, abs=0.02) and z.std().item() == pytest.approx(2.0, abs=0.02)


@pytest.mark.parametrize("kind", losses.GAN_LOSSES)
def test_discriminator_terms_add_and_log_the_penalty_only_for_wgan_gp(kind):
    from types import SimpleNamespace

    from vaegan_runner.models.adversarial import discriminator_terms

    real, fake = torch.randn(6, 1), torch.randn(6, 1)
    loss, logs = discriminator_terms(
        SimpleNamespace(loss=kind, gp_weight=10.0), real, fake, penalty=lambda: torch.tensor(0.5)
    )
    d = losses.discriminator_loss(kind, real, fake)
    assert torch.equal(logs["d"], d)
    assert list(logs) == ["d", "acc/d_real", "acc/d_fake"] + (["gp"] if kind == "wgan-gp" else [])
    assert loss.item() == pytest.approx(d.item() + (5.0 if kind == "wgan-gp" else 0.0))
