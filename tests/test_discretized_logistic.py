"""The discretised logistic likelihood of the VAE on 8-bit images: a proper distribution over
the 256 levels, equal to the textbook CDF differences, finite for narrow logistics, and a VAE
that uses it learns (its negative ELBO falls)."""

import math

import pytest
import torch

from vaegan_runner.models.losses import discretized_logistic_nll

LEVELS = torch.arange(256, dtype=torch.float64) / 255


@pytest.mark.parametrize("mean, log_scale", [(0.5, -3.0), (0.02, -5.0), (0.99, -1.0), (0.3, 1.0)])
def test_the_256_levels_carry_all_the_mass(mean, log_scale):
    x = LEVELS.view(256, 1, 1, 1)
    nll = discretized_logistic_nll(torch.full_like(x, mean), torch.tensor(log_scale, dtype=torch.float64), x)
    assert torch.exp(-nll).sum().item() == pytest.approx(1.0, abs=1e-9)


def test_equals_the_difference_of_cdfs():
    torch.manual_seed(0)
    x = LEVELS[torch.randint(1, 255, (4, 3, 5, 5))]
    mean = torch.rand(4, 3, 5, 5, dtype=torch.float64)
    log_scale = torch.tensor([-2.0, -3.0, -1.5], dtype=torch.float64).view(3, 1, 1)
    scale = log_scale.exp()
    mass = torch.sigmoid((x + 0.5 / 255 - mean) / scale) - torch.sigmoid((x - 0.5 / 255 - mean) / scale)
    expected = -mass.log().flatten(1).sum(1)
    assert torch.allclose(discretized_logistic_nll(mean, log_scale, x), expected, rtol=1e-8)


def test_a_narrow_logistic_stays_finite_and_its_gradient_too():
    x = LEVELS[torch.tensor([0, 17, 128, 255])].view(4, 1, 1, 1).float()
    mean = torch.full_like(x, 0.4, requires_grad=True)
    log_scale = torch.tensor(-12.0, requires_grad=True)  # scale 6e-6: far narrower than a bin
    nll = discretized_logistic_nll(mean, log_scale, x)
    nll.sum().backward()
    assert torch.isfinite(nll).all() and torch.isfinite(mean.grad).all() and torch.isfinite(log_scale.grad)
    # a narrow logistic centred on the pixel's level puts (nearly) all its mass in that bin
    centred = discretized_logistic_nll(x.clone(), torch.tensor(-12.0), x)
    assert centred.max().item() < 1e-6


def test_a_vae_with_it_learns_colour_images(build_family):
    torch.manual_seed(0)
    _, family = build_family(
        "vae",
        "model.likelihood=discretized_logistic",
        "model.prior=gaussian",
        "model.latent_dim=8",
        "model.net.width=8",
        channels=3,
        image_size=16,
    )
    smooth = torch.nn.functional.interpolate(torch.rand(16, 3, 4, 4), size=16, mode="bilinear")
    x = (smooth * 255).round() / 255  # 8-bit images with little detail: much to learn
    optimizer = torch.optim.Adam(family.parameters(), lr=1e-2)
    first = None
    for step in range(60):
        losses, logs = family.elbo_losses(x, None, step)
        optimizer.zero_grad()
        losses["encoder"].backward()
        optimizer.step()
        first = first if first is not None else logs["neg_elbo"].item()
    last = logs["neg_elbo"].item()
    bits_per_dim = last / (3 * 16 * 16 * math.log(2))
    assert last < first * 0.85 and bits_per_dim < 7.0, (first, last, bits_per_dim)


@pytest.mark.parametrize("likelihood, has_bits", [("discretized_logistic", True), ("bernoulli", False)])
def test_the_iwae_metric_gives_bits_per_dimension_for_8_bit_likelihoods(likelihood, has_bits):
    from types import SimpleNamespace

    from vaegan_runner.metrics.registry import METRICS

    notes = {}
    ctx = SimpleNamespace(
        cfg=SimpleNamespace(iwae_k=5),
        family=SimpleNamespace(cfg=SimpleNamespace(likelihood=likelihood)),
        data=SimpleNamespace(channels=3, image_size=32),
        iwae_images=lambda: 100,
        negative_log_likelihood_bound=lambda k, images: (7000.0, images),
        note=lambda metric, **counts: notes.update({metric: counts}),
    )
    values = METRICS["iwae"].compute(ctx)
    assert values["iwae_nll"] == 7000.0
    if has_bits:
        assert values["iwae_bits_per_dim"] == pytest.approx(7000.0 / (3072 * math.log(2)))
        assert notes["iwae"]["dims"] == 3072
    else:
        assert "iwae_bits_per_dim" not in values and "dims" not in notes["iwae"]
