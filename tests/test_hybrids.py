"""VAE-GAN, AAE and BiGAN: what they log, where each loss's gradient goes, the AAE priors,
the latent view, and the configs they refuse."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from runner_utils import FAST, LOGGED_AT_6_AND_12, compose_config
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.models import fixed_priors, vaegan
from vaegan_runner.models.losses import discriminator_loss, generator_loss, kl_to_standard_normal
from vaegan_runner.run_schema import validate
from vaegan_runner.train import run as train_run
from vaegan_runner.training.latent_view import PALETTE, PRIOR_GREY, scatter_image

HISTOGRAMS = [f"latent/{kind}dim_{k}" for k in range(8) for kind in ("", "prior_")]


def read_events(run_dir):
    """runner_utils.read_events, keeping every histogram event too."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    events.Reload()
    return events


def batch(family, n: int = 16) -> torch.Tensor:
    torch.manual_seed(123)
    x = torch.rand(n, 1, family.image_size, family.image_size)
    return x if family.pixel_range == "unit" else x * 2 - 1


@pytest.fixture
def run_phase(phase_runner):
    """``run_phase(run, family, name, x, seed=7)``: that phase alone through the loop's own phase
    runner (fresh optimizers), after seeding torch with ``seed``; returns its logs (the grads
    stay on .grad)."""

    def one_phase(run, family, name: str, x: torch.Tensor, seed: int = 7) -> dict[str, torch.Tensor]:
        runner = phase_runner(run, family)
        torch.manual_seed(seed)
        labels = torch.zeros(x.shape[0], dtype=torch.long)
        return runner.run(next(p for p in family.phases if p.name == name), x, labels, 0)

    return one_phase


def assert_grads(net: torch.nn.Module, loss: torch.Tensor, reference: torch.nn.Module) -> None:
    """``net``'s .grad (left by the loop) equals d loss / d (reference's copy of its weights)."""
    expected = torch.autograd.grad(loss, list(reference.parameters()), retain_graph=True, allow_unused=True)
    for (name, p), g in zip(net.named_parameters(), expected):
        g = torch.zeros_like(p) if g is None else g
        assert p.grad is not None, name
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6), (name, (p.grad - g).abs().max())


# --- end to end: every tag docs/runs.md promises ------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "model,extra,losses,latent_images,latent_histograms",
    [
        ("vaegan", [], ["kl", "feature_rec", "pixel_rec", "d", "g", "d_real_bce", "d_fake_bce"], [], HISTOGRAMS),
        ("aae", ["model.latent_dim=2", "model.prior=mixture"], ["recon", "d", "g"], ["latent/scatter"], []),
        ("bigan", [], ["d", "ge"], [], HISTOGRAMS),
        ("vae", ["model.latent_dim=2"], ["recon", "kl", "neg_elbo"], ["latent/scatter"], []),
    ],
)
def test_trains_and_logs_every_tag(tmp_path, model, extra, losses, latent_images, latent_histograms):
    final = train_run(
        compose_config(
            [
                f"model={model}",
                *FAST,
                *extra,
                *LOGGED_AT_6_AND_12,
            ]
        ),
        tmp_path,
    )
    events = read_events(tmp_path)
    tags = events.Tags()
    expected = [f"loss/{name}" for name in losses]
    if model != "vae":
        expected += ["acc/d_real", "acc/d_fake", "eval/d_acc_real", "eval/d_acc_fake", "eval/recon_mse"]
    if model == "vaegan":
        expected += ["gate/discriminator_skipped", "gate/decoder_gan_skipped"]
    for tag in expected:
        assert tag in tags["scalars"], (tag, tags["scalars"])
        assert all(math.isfinite(e.value) for e in events.Scalars(tag))
    assert sorted(tags["images"]) == sorted(["samples", "reconstructions", "interpolations", *latent_images])
    assert sorted(tags["histograms"]) == sorted(latent_histograms)
    for tag in latent_images + latent_histograms[:1]:
        steps = [e.step for e in (events.Images(tag) if tag in latent_images else events.Histograms(tag))]
        assert steps == [6, 12]
    assert all(math.isfinite(v) for v in final.values())


# --- VAE-GAN: each network gets the gradient of its own loss, nothing else -------------------------
def vaegan_losses(family, x: torch.Tensor, seed: int, gamma: float, pixel_weight: float, beta: float = 1.0):
    """The three losses of Larsen et al.'s Algorithm 1, computed here from the networks alone
    (same random draws as the family: prior z first, then the posterior noise)."""
    torch.manual_seed(seed)
    n = x.shape[0]
    z_prior = torch.randn(n, family.latent_dim)
    mu, logvar = family.encoder(x).chunk(2, dim=1)
    logvar = logvar.clamp(-30, 20)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    x_rec, x_prior = torch.tanh(family.decoder(torch.cat([z, z_prior]))).split(n)
    feats = family.discriminator.features(torch.cat([x, x_rec, x_prior]))
    logits = family.discriminator.head(feats[-1].flatten(1))
    layer = feats[family.cfg.feature_layer].flatten(1)
    llike = (
        0.5 * (layer[n : 2 * n] - layer[:n]).pow(2).sum(1).mean()
        + pixel_weight * 0.5 * (x_rec - x).pow(2).flatten(1).sum(1).mean()
    )
    gan_d = discriminator_loss("nonsaturating", logits[:n], logits[n:])
    gan_g = generator_loss("nonsaturating", logits[n:])
    kl = kl_to_standard_normal(mu, logvar).mean()
    return {
        "encoder": beta * kl + llike,
        "decoder": gamma * llike + gan_g,
        "discriminator": gan_d,
        "decoder_without_gan": gamma * llike,
    }


@pytest.mark.parametrize("feature_layer", [0, -1])
@pytest.mark.parametrize("floor", [vaegan.SHARED_D_LOGIT_FLOOR, float("inf")], ids=["shared-d", "below-floor"])
def test_vaegan_gradient_split(feature_layer, floor, build_family, run_phase, monkeypatch):
    """Each network gets the gradient of its own loss of Algorithm 1, whether the decoder's GAN
    gradient comes from D's own backward pass or, for logits below the floor, from its own."""
    monkeypatch.setattr(vaegan, "SHARED_D_LOGIT_FLOOR", floor)
    run, family = build_family(
        "vaegan", "model.gamma=0.3", "model.pixel_weight=0.5", "model.beta=2.0", f"model.feature_layer={feature_layer}"
    )
    assert family.can_share_d_backward()
    reference, x = copy.deepcopy(family), batch(family)
    run_phase(run, family, "vaegan", x, seed=7)
    expected = vaegan_losses(reference, x, seed=7, gamma=0.3, pixel_weight=0.5, beta=2.0)
    for net in ("encoder", "decoder", "discriminator"):
        assert_grads(getattr(family, net), expected[net], getattr(reference, net))
    # The check has teeth: the pythae-style leak (decoder loss also into the encoder) differs.
    leaked = torch.autograd.grad(
        expected["encoder"] + expected["decoder"], list(reference.encoder.parameters()), retain_graph=True
    )
    assert not all(torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6) for p, g in zip(family.encoder.parameters(), leaked))


@pytest.mark.parametrize(
    "setting,in_step,encoder_rows,decoder_rows,d_rows",
    [
        # shared: D's loss on x, x~, x_p and dL_llike/dx~ once, in the step; the loop's passes skip D
        ("model.loss=nonsaturating", [16, 16, 16, 16], [], [], []),
        # hinge: D's cotangent is 0 for some fakes, so each loss goes back through D itself
        ("model.loss=hinge", [], [16], [16, 16], [16, 16, 16]),
        # batch norm ties the images together: one batch of 48 in every pass
        ("model.discriminator.norm=batch", [], [48], [48], [48]),
    ],
)
def test_vaegan_backward_runs_d_only_where_needed(setting, in_step, encoder_rows, decoder_rows, d_rows, build_family):
    """Images each backward pass through D's last block takes: in the step itself (the shared
    pass) and in the loop's pass of each network's loss. Without batch norm, the encoder's loss
    reads x~ alone and the decoder's x~ and x_p, so neither goes back through x."""
    run, family = build_family("vaegan", setting)
    rows: list[int] = []
    last_block = family.discriminator.blocks[-1]
    last_block.register_full_backward_hook(lambda module, grad_in, grad_out: rows.append(grad_out[0].shape[0]))
    torch.manual_seed(0)
    losses, _ = family.all_losses(batch(family), torch.zeros(16, dtype=torch.long), 0)
    seen = {"step": sorted(rows)}
    for net in ("encoder", "decoder", "discriminator"):
        rows.clear()
        losses[net].backward(inputs=list(getattr(family, net).parameters()), retain_graph=True)
        seen[net] = sorted(rows)
    assert seen == {"step": in_step, "encoder": encoder_rows, "decoder": decoder_rows, "discriminator": d_rows}


def test_vaegan_gating_skips_d_when_too_good_and_gan_term_when_too_bad(build_family, run_phase):
    # Every cross-entropy is far below 5 - 0.1: D counts as too good, its update is skipped.
    run, family = build_family("vaegan", "model.equilibrium=5.0", "model.margin=0.1", "model.gamma=0.3")
    reference, x = copy.deepcopy(family), batch(family)
    d_before = [p.detach().clone() for p in family.discriminator.parameters()]
    logs = run_phase(run, family, "vaegan", x)
    assert logs["gate/discriminator_skipped"] == 1 and logs["gate/decoder_gan_skipped"] == 0
    assert all(torch.count_nonzero(p.grad) == 0 for p in family.discriminator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(d_before, family.discriminator.parameters()))
    expected = vaegan_losses(reference, x, seed=7, gamma=0.3, pixel_weight=0.0)
    assert_grads(family.decoder, expected["decoder"], reference.decoder)

    # Every cross-entropy is far above 0.02 + 0.01: D counts as too bad, the decoder drops its GAN term.
    run, family = build_family("vaegan", "model.equilibrium=0.02", "model.margin=0.01", "model.gamma=0.3")
    reference = copy.deepcopy(family)
    logs = run_phase(run, family, "vaegan", x)
    assert logs["gate/discriminator_skipped"] == 0 and logs["gate/decoder_gan_skipped"] == 1
    expected = vaegan_losses(reference, x, seed=7, gamma=0.3, pixel_weight=0.0)
    assert_grads(family.decoder, expected["decoder_without_gan"], reference.decoder)
    assert_grads(family.discriminator, expected["discriminator"], reference.discriminator)


# --- AAE -----------------------------------------------------------------------------------------
def test_aae_phase_gradients(build_family, run_phase):
    run, family = build_family("aae", "model.adversarial_weight=2.5")
    reference, x = copy.deepcopy(family), batch(family)
    run_phase(run, family, "reconstruction", x)
    recon = (
        F.binary_cross_entropy_with_logits(reference.decoder(reference.encoder(x)), x, reduction="none")
        .flatten(1)
        .sum(1)
        .mean()
    )
    assert_grads(family.encoder, recon, reference.encoder)
    assert_grads(family.decoder, recon, reference.decoder)

    run, family = build_family("aae", "model.adversarial_weight=2.5")
    reference = copy.deepcopy(family)
    run_phase(run, family, "regularization", x, seed=3)
    torch.manual_seed(3)
    codes = reference.encoder(x)
    prior = torch.randn(x.shape[0], family.latent_dim)
    real, fake = reference.discriminator(prior), reference.discriminator(codes)
    assert_grads(family.encoder, 2.5 * generator_loss("nonsaturating", fake), reference.encoder)
    assert_grads(family.discriminator, discriminator_loss("nonsaturating", real, fake), reference.discriminator)


def test_aae_gaussian_encoder_samples_in_training_and_encodes_the_mean(build_family):
    _, family = build_family("aae", "model.encoder_type=gaussian")
    family.eval()
    x = batch(family, 4)
    assert not torch.equal(family.code(x), family.code(x))
    assert torch.equal(family.encode(x), family.encode(x))
    assert family.encode(x).shape == (4, family.latent_dim)


# --- BiGAN ---------------------------------------------------------------------------------------
def bigan_code(family, x: torch.Tensor) -> torch.Tensor:
    """E(x) as the family trains it: deterministic, or one reparameterised draw (ALI)."""
    if family.cfg.encoder_type == "deterministic":
        return family.encoder(x)
    mu, logvar = family.encoder(x).chunk(2, dim=1)
    return mu + torch.randn_like(mu) * (0.5 * logvar.clamp(-30, 20)).exp()


@pytest.mark.parametrize("encoder_type", ["deterministic", "gaussian"])
def test_bigan_phase_gradients(encoder_type, build_family, run_phase):
    overrides = ("model.discriminator.dropout=0.0", "model.latent_dim=6", f"model.encoder_type={encoder_type}")
    run, family = build_family("bigan", *overrides)
    reference, x = copy.deepcopy(family), batch(family)
    run_phase(run, family, "generator", x, seed=5)
    torch.manual_seed(5)
    z = torch.randn(x.shape[0], 6)
    real = reference.discriminator(x, bigan_code(reference, x))
    fake = reference.discriminator(torch.tanh(reference.generator(z)), z)
    swapped = F.softplus(-fake).mean() + F.softplus(real).mean()  # D's loss, labels exchanged
    assert_grads(family.generator, swapped, reference.generator)
    assert_grads(family.encoder, swapped, reference.encoder)

    run, family = build_family("bigan", *overrides)
    reference = copy.deepcopy(family)
    run_phase(run, family, "discriminator", x, seed=5)
    torch.manual_seed(5)
    z = torch.randn(x.shape[0], 6)
    with torch.no_grad():
        code, fake_x = bigan_code(reference, x), torch.tanh(reference.generator(z))
    loss = discriminator_loss("nonsaturating", reference.discriminator(x, code), reference.discriminator(fake_x, z))
    assert_grads(family.discriminator, loss, reference.discriminator)


def test_bigan_n_critic_and_ali_encoder(build_family):
    _, family = build_family("bigan", "model.n_critic=3", "model.encoder_type=gaussian")
    assert {p.name: (p.networks, p.interval) for p in family.phases} == {
        "discriminator": (("discriminator",), 1),
        "generator": (("generator", "encoder"), 3),
    }
    family.eval()
    x = batch(family, 4)
    assert not torch.equal(family.code(x), family.code(x))
    assert torch.equal(family.encode(x), family.encode(x))


# --- priors ----------------------------------------------------------------------------------------
N = 200_000


def test_gaussian_and_uniform_prior_moments():
    g = fixed_priors.gaussian(N, 3, generator=torch.Generator().manual_seed(0))
    assert g.shape == (N, 3)
    assert g.mean(0).abs().max() < 0.01 and (g.var(0) - 1).abs().max() < 0.02
    u = fixed_priors.uniform(N, 3, generator=torch.Generator().manual_seed(0))
    assert u.min() >= -1 and u.max() <= 1
    assert u.mean(0).abs().max() < 0.01 and (u.var(0) - 1 / 3).abs().max() < 0.01


def test_mixture_prior_components_on_the_circle_with_equal_weights():
    k, radius, std = 10, 3.0, 0.2
    means = fixed_priors.mixture_means(4, k, radius)
    assert torch.allclose(means[:, :2].norm(dim=1), torch.full((k,), radius))
    assert torch.equal(means[:, 2:], torch.zeros(k, 2))
    angles = torch.atan2(means[:, 1], means[:, 0]).remainder(2 * math.pi)
    assert torch.allclose(angles.sort().values, torch.arange(k) * 2 * math.pi / k, atol=1e-5)

    z = fixed_priors.mixture(N, 4, components=k, radius=radius, std=std, generator=torch.Generator().manual_seed(0))
    nearest = torch.cdist(z, means).argmin(1)
    counts = torch.bincount(nearest, minlength=k).float()
    assert (counts / N - 1 / k).abs().max() < 0.005
    for j in range(k):
        members = z[nearest == j]
        assert (members.mean(0) - means[j]).abs().max() < 0.01
        assert (members.std(0) - std).abs().max() < 0.01


@pytest.mark.parametrize("prior", ["gaussian", "uniform", "mixture"])
def test_sample_latent_draws_from_the_configured_prior(prior, build_family):
    _, family = build_family(
        "aae", f"model.prior={prior}", "model.latent_dim=3", "model.prior_radius=5.0", "model.prior_std=0.1"
    )
    z = family.sample_latent(50_000, torch.Generator().manual_seed(1))
    again = family.sample_latent(50_000, torch.Generator().manual_seed(1))
    assert torch.equal(z, again)
    if prior == "gaussian":
        assert (z.var(0) - 1).abs().max() < 0.05
    elif prior == "uniform":
        assert z.abs().max() <= 1 and (z.var(0) - 1 / 3).abs().max() < 0.02
    else:
        assert (z[:, :2].norm(dim=1) - 5.0).abs().mean() < 0.15 and z[:, 2].std() < 0.11


# --- latent view -------------------------------------------------------------------------------------
def test_scatter_puts_codes_where_they_are_in_their_label_colour():
    codes = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    prior = torch.tensor([[0.5, -0.5]])
    image = scatter_image(codes, torch.tensor([3, 7]), prior, extent=1.0, size=101, swatch=12)
    assert image.shape == (3, 113, 101) and image.min() >= 0 and image.max() <= 1
    assert torch.allclose(image[:, 0, 100], PALETTE[3])  # (1, 1): the top right corner
    assert torch.allclose(image[:, 100, 0], PALETTE[7])  # (-1, -1): the bottom left corner
    assert torch.allclose(image[:, 75, 75], torch.full((3,), PRIOR_GREY))  # (0.5, -0.5)
    assert torch.allclose(image[:, 10, 10], torch.ones(3))  # empty paper stays white


# --- configs a family refuses -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model,overrides,key,words",
    [
        ("aae", ["model.prior=laplace"], "model.prior", "mixture"),
        ("aae", ["model.pixel_range=symmetric"], "model.reconstruction", "Bernoulli"),
        ("aae", ["model.prior=mixture", "model.latent_dim=1"], "model.latent_dim", "circle"),
        ("aae", ["model.encoder_type=vampprior"], "model.encoder_type", "deterministic"),
        ("aae", ["model.discriminator.hidden=[]"], "model.discriminator.hidden", "at least one"),
        ("aae", ["model.prior_std=0"], "model.prior_std", "> 0"),
        ("vaegan", ["model.loss=wgan-gp", "model.discriminator.norm=batch"], "model.discriminator.norm", "batch norm"),
        ("vaegan", ["model.loss=hinge", "model.equilibrium=0.68"], "model.equilibrium", "nonsaturating"),
        ("vaegan", ["model.gamma=-1"], "model.gamma", ">= 0"),
        ("bigan", ["model.discriminator.dropout=1.5"], "model.discriminator.dropout", "[0, 1)"),
        ("bigan", ["model.encoder_type=stochastic"], "model.encoder_type", "gaussian"),
        ("bigan", ["model.n_critic=0"], "model.n_critic", "> 0"),
    ],
)
def test_bad_config_names_the_key(model, overrides, key, words):
    with pytest.raises(ConfigError) as err:
        validate(compose_config([f"model={model}", *overrides]))
    assert err.value.key == key, str(err.value)
    assert words in str(err.value)


@pytest.mark.parametrize("arch,image_size,layer", [("conv", 28, 2), ("conv", 28, -3), ("conv", 64, 4), ("mlp", 28, 2)])
def test_vaegan_feature_layer_out_of_range_for_the_image_size(arch, image_size, layer, build_family):
    # conv D halves 28 -> 14 -> 7 (2 blocks) and 64 -> 32 -> 16 -> 8 -> 4 (4 blocks); mlp: one per hidden layer
    with pytest.raises(ConfigError) as err:
        build_family(
            "vaegan",
            f"model.net.arch={arch}",
            "model.net.hidden=[32,16]",
            f"model.feature_layer={layer}",
            image_size=image_size,
        )
    assert err.value.key == "model.feature_layer" and "out of range" in str(err.value)
    last_valid = layer - 1 if layer > 0 else layer + 1
    build_family(
        "vaegan",
        f"model.net.arch={arch}",
        "model.net.hidden=[32,16]",
        f"model.feature_layer={last_valid}",
        image_size=image_size,
    )
