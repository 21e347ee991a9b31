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


def train_small_colour_vae(build_family, scale: str, x: torch.Tensor, steps: int = 60) -> tuple[float, float]:
    """A narrow VAE with the discretised logistic (``model.logistic_scale=scale``) trained on
    the 16x16 colour batch ``x`` by Adam: its negative ELBO at the first and the last step."""
    torch.manual_seed(0)
    _, family = build_family(
        "vae",
        "model.likelihood=discretized_logistic",
        f"model.logistic_scale={scale}",
        "model.prior=gaussian",
        "model.latent_dim=8",
        "model.net.width=8",
        channels=3,
        image_size=16,
    )
    optimizer = torch.optim.Adam(family.parameters(), lr=1e-2)
    first = None
    for step in range(steps):
        losses, logs = family.elbo_losses(x, None, step)
        optimizer.zero_grad()
        losses["encoder"].backward()
        optimizer.step()
        first = first if first is not None else logs["neg_elbo"].item()
    return first, logs["neg_elbo"].item()


def bits_per_dim(nats: float) -> float:
    return nats / (3 * 16 * 16 * math.log(2))


@pytest.mark.parametrize("scale", ["channel", "pixel"])
def test_a_vae_with_it_learns_colour_images(build_family, scale):
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(16, 3, 4, 4), size=16, mode="bilinear")
    x = (smooth * 255).round() / 255  # 8-bit images with little detail: much to learn
    first, last = train_small_colour_vae(build_family, scale, x)
    assert last < first * 0.85 and bits_per_dim(last) < 7.0, (first, last, bits_per_dim(last))


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


def test_scales_decoded_per_pixel_fit_flat_and_noisy_regions_better_than_one_per_channel(build_family):
    """Left half of every image one flat colour, right half noise: one scale per channel must
    spread over the noise everywhere, a scale per pixel can be narrow on the flat half."""
    torch.manual_seed(0)
    x = torch.full((16, 3, 16, 16), 0.5)
    x[..., 8:] = torch.randint(0, 256, (16, 3, 16, 8)) / 255
    final = {scale: bits_per_dim(train_small_colour_vae(build_family, scale, x)[1]) for scale in ("channel", "pixel")}
    assert final["pixel"] < final["channel"] - 1.0, final  # measured: 4.86 against 7.43 bits per dimension


def test_a_pixel_scale_vae_decodes_images_of_the_datasets_channels(build_family):
    _, family = build_family(
        "vae", "model.likelihood=discretized_logistic", "model.logistic_scale=pixel", channels=3, image_size=16
    )
    assert not hasattr(family.decoder, "log_scale")
    z = family.sample_latent(4)
    assert family.generate(z).shape == (4, 3, 16, 16)
    x = torch.rand(4, 3, 16, 16)
    assert family.reconstruct(x).shape == x.shape
    logits = torch.full((4, 6, 16, 16), -100.0)
    assert torch.all(family.logistic_log_scale(logits) == -7.0)  # clamped, as PixelCNN++ does


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_a_pixel_scale_without_the_logistic_is_refused_naming_the_key(likelihood):
    from runner_utils import FAST, compose_config
    from vaegan_runner.config.checks import ConfigError
    from vaegan_runner.run_schema import validate

    overrides = [*FAST, "model=vae", f"model.likelihood={likelihood}", "model.logistic_scale=pixel"]
    with pytest.raises(ConfigError) as err:
        validate(compose_config(overrides))
    assert err.value.key == "model.logistic_scale" and "discretized_logistic" in err.value.message
