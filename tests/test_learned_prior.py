"""The VAE's learned mixture prior (``model.prior=mixture``): its density and draws are those of
the mixture it holds, it trains with the decoder, and the ELBO and IWAE bounds use it."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

from vaegan_runner.models.encoders import gaussian_posterior
from vaegan_runner.models.learned_prior import LearnedMixturePrior
from vaegan_runner.models.losses import diagonal_gaussian_log_density, kl_to_standard_normal


def set_mixture(prior: LearnedMixturePrior, means, log_variances, weights) -> None:
    with torch.no_grad():
        prior.means.copy_(torch.as_tensor(means, dtype=torch.float32))
        prior.log_variances.copy_(torch.as_tensor(log_variances, dtype=torch.float32))
        prior.weight_logits.copy_(torch.as_tensor(weights, dtype=torch.float32).log())


def test_one_standard_component_is_the_standard_normal():
    prior = LearnedMixturePrior(dim=5, components=1)
    set_mixture(prior, torch.zeros(1, 5), torch.zeros(1, 5), [1.0])
    z = torch.randn(64, 5)
    assert torch.allclose(prior.log_prob(z), diagonal_gaussian_log_density(z), atol=1e-5)


def test_density_is_the_weighted_mixture():
    prior = LearnedMixturePrior(dim=3, components=2)
    means, logvars, weights = [[2.0, 0.0, -1.0], [-3.0, 1.0, 0.5]], [[0.0, -1.0, 0.5], [1.0, 0.0, -2.0]], [0.7, 0.3]
    set_mixture(prior, means, logvars, weights)
    reference = D.MixtureSameFamily(
        D.Categorical(torch.tensor(weights)),
        D.Independent(D.Normal(torch.tensor(means), (0.5 * torch.tensor(logvars)).exp()), 1),
    )
    z = torch.randn(200, 3) * 3
    assert torch.allclose(prior.log_prob(z), reference.log_prob(z), atol=1e-4)


def test_draws_follow_the_weights_and_spreads_and_repeat_with_the_seed():
    prior = LearnedMixturePrior(dim=2, components=2)
    set_mixture(prior, [[10.0, 0.0], [-10.0, 0.0]], [[0.0, 0.0], [2 * torch.tensor(0.25).log().item()] * 2], [0.8, 0.2])
    z = prior.sample(20000, torch.Generator().manual_seed(0))
    right, left = z[z[:, 0] > 0], z[z[:, 0] <= 0]
    assert right.shape[0] / 20000 == pytest.approx(0.8, abs=0.015)
    assert right.std(0) == pytest.approx(torch.ones(2), abs=0.05)
    assert left.std(0) == pytest.approx(torch.full((2,), 0.25), abs=0.02)
    assert torch.equal(z, prior.sample(20000, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("model", ["vae", "vaegan"])
def test_mixture_prior_trains_with_the_decoder_and_the_gaussian_one_is_unchanged(model, build_family, phase_runner):
    _, plain = build_family(model, "model.prior=gaussian")
    assert plain.prior is None and not any(k.startswith("prior.") for k in plain.decoder.state_dict())
    run, vae = build_family(model, "model.prior=mixture", "model.prior_components=7")
    prior_params = list(vae.prior.parameters())
    assert vae.prior.components == 7
    decoder_params, encoder_params = (list(vae.networks()[n].parameters()) for n in ("decoder", "encoder"))
    assert all(any(p is q for q in decoder_params) for p in prior_params)
    assert not any(p is q for p in prior_params for q in encoder_params)
    before = [p.detach().clone() for p in prior_params]
    x = torch.rand(16, 1, 28, 28) * (1 if vae.pixel_range == "unit" else 2) - (0 if vae.pixel_range == "unit" else 1)
    phase_runner(run, vae).run(vae.phases[0], x, torch.zeros(16, dtype=torch.long), 0)
    assert all(not torch.equal(a, b) for a, b in zip(before, prior_params))
    draws = vae.sample_latent(6, torch.Generator().manual_seed(1))
    assert torch.equal(draws, vae.prior.sample(6, torch.Generator().manual_seed(1)))
    assert vae.generate(draws).shape == (6, 1, 28, 28)


def test_the_bounds_use_the_mixture(build_family):
    """With one standard component the mixture VAE is the N(0, I) VAE: its sampled KL averages to
    the closed form and its importance weights are the same draws' weights. Moved away, the
    weights change by exactly the change in log p(z)."""
    _, gaussian = build_family(
        "vae", "model.net.arch=mlp", "model.net.hidden=[32]", "model.latent_dim=4", "model.prior=gaussian"
    )
    _, mixture = build_family(
        "vae",
        "model.net.arch=mlp",
        "model.net.hidden=[32]",
        "model.latent_dim=4",
        "model.prior=mixture",
        "model.prior_components=10",
    )
    mixture.encoder.load_state_dict(gaussian.encoder.state_dict())
    mixture.decoder.load_state_dict(gaussian.decoder.state_dict(), strict=False)
    set_mixture(mixture.prior, torch.zeros(1, 4).repeat(10, 1), torch.zeros(10, 4), torch.full((10,), 0.1))
    gaussian.eval(), mixture.eval()
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        sampled_kl = torch.stack([mixture.elbo_terms(x, None)[1] for _ in range(4000)]).mean(0)
        closed_kl = kl_to_standard_normal(*gaussian_posterior(gaussian.encoder, x))
    assert torch.allclose(sampled_kl, closed_kl, rtol=0.03, atol=0.02)

    torch.manual_seed(3)
    expected = gaussian.log_importance_weights(x, 5)
    torch.manual_seed(3)
    assert torch.allclose(mixture.log_importance_weights(x, 5), expected, atol=1e-4)
    with torch.no_grad():
        mixture.prior.means.add_(2.0)
    torch.manual_seed(3)
    moved = mixture.log_importance_weights(x, 5)
    assert not torch.allclose(moved, expected, atol=1e-2)


def test_vaegan_prior_learns_from_the_kl_alone(build_family, phase_runner):
    """The VAE-GAN's decoder loss adds beta * KL only for the prior living in the decoder: the
    prior's gradient is that of beta * KL, the rest of the decoder's is unchanged by it."""
    import copy

    run, family = build_family("vaegan", "model.prior=mixture", "model.beta=2.0")
    reference, x = copy.deepcopy(family), torch.rand(16, 1, 28, 28) * 2 - 1
    labels = torch.zeros(16, dtype=torch.long)
    torch.manual_seed(7)
    phase_runner(run, family).run(family.phases[0], x, labels, 0)
    torch.manual_seed(7)
    terms = reference.terms(x, labels).terms
    prior = list(reference.prior.parameters())
    expected = torch.autograd.grad(2.0 * terms["kl"], prior, retain_graph=True)
    for p, g in zip(family.prior.parameters(), expected):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6)
    weights = [p for name, p in reference.decoder.named_parameters() if not name.startswith("prior.")]
    without_kl = torch.autograd.grad(
        reference.cfg.gamma * terms["feature_rec"] + terms["g"], weights, retain_graph=True, allow_unused=True
    )
    live = [p for name, p in family.decoder.named_parameters() if not name.startswith("prior.")]
    for p, g in zip(live, without_kl):
        assert torch.allclose(p.grad, torch.zeros_like(p) if g is None else g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model", ["vae", "vaegan"])
def test_a_checkpoint_from_before_the_learned_prior_loads_with_the_standard_normal(model, build_family):
    """Checkpoints written before ``model.prior`` existed lack the key: they were trained with
    N(0, I) and load so, whatever the default is now."""
    import copy

    from omegaconf import OmegaConf

    from vaegan_runner.run_schema import validate
    from vaegan_runner.training.checkpoint_migrations import with_added_keys

    run, _ = build_family(model, "model.prior=mixture")
    old = copy.deepcopy(run.resolved)
    del old["model"]["prior"], old["model"]["prior_components"]
    assert validate(OmegaConf.create(with_added_keys(old))).model.prior == "gaussian"


def test_the_vae_default_prior_is_the_mixture_except_where_measured_otherwise():
    from runner_utils import compose_config
    from vaegan_runner.run_schema import validate

    def prior(*overrides):
        return validate(compose_config(list(overrides))).model.prior

    assert prior("model=vae") == "mixture"
    assert prior("model=vae", "model.conditional=true") == "gaussian"  # the CVAE was measured with N(0, I)
    assert prior("experiment=vae_reference") == "gaussian"  # the paper's model
    assert prior("experiment=vae_mnist") == "gaussian"  # the plain loop it is compared with
    assert prior("model=vaegan") == "gaussian"
