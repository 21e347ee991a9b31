"""Contract tests run over every model family: phases update only their own networks."""

from __future__ import annotations

import pytest
import torch

from vaegan_runner.models import family_class, family_names


def batch(family, n=16):
    x = torch.rand(n, family.channels, family.image_size, family.image_size)
    return x if family.pixel_range == "unit" else x * 2 - 1


def params_of(family):
    return {net: [p.detach().clone() for p in module.parameters()] for net, module in family.networks().items()}


def labels_for(x: torch.Tensor) -> torch.Tensor:
    """Labels for a test batch: classes 0, 1, 2, 0, ... (read only by conditional families)."""
    return torch.arange(x.shape[0]) % 3


def phase_named(family, name: str):
    return next(phase for phase in family.phases if phase.name == name)


@pytest.mark.parametrize(
    "model,conditional,extra",
    [(m, c, ()) for m in family_names() for c in (False, True) if c or not family_class(m).conditional_only]
    + [(m, c, ("model.prior=mixture",)) for m in ("vae", "vaegan") for c in (False, True)],
)
def test_each_phase_changes_only_its_networks(model, conditional, extra, build_family, phase_runner):
    run, family = build_family(model, f"model.conditional={str(conditional).lower()}", *extra)
    assert family.conditional == conditional
    runner = phase_runner(run, family)  # the loop's own update code, one phase at a time
    params = {n: list(m.parameters()) for n, m in family.networks().items()}
    x = batch(family)
    for phase in list(family.phases):
        family.zero_grad(set_to_none=True)
        before = params_of(family)
        logs = runner.run(phase, x, labels_for(x), 0)
        after = params_of(family)
        for net in family.networks():
            changed = any(not torch.equal(a, b) for a, b in zip(before[net], after[net]))
            assert changed == (net in phase.networks), f"{model}/{phase.name}: {net} changed={changed}"
            if net not in phase.networks:
                assert all(p.grad is None for p in params[net]), f"{model}/{phase.name} leaked grads into {net}"
        assert all(torch.isfinite(v).all() for v in logs.values())


@pytest.mark.parametrize("model", family_names())
@pytest.mark.parametrize(
    "channels,image_size,arch", [(1, 28, "conv"), (3, 32, "conv"), (3, 64, "conv"), (1, 28, "mlp")]
)
def test_sample_and_reconstruct_shapes_and_range(model, channels, image_size, arch, build_family):
    _, family = build_family(
        model, f"model.net.arch={arch}", "model.net.hidden=[32,16]", channels=channels, image_size=image_size
    )
    family.eval()
    z = family.sample_latent(5)
    images = family.generate(z)
    assert images.shape == (5, channels, image_size, image_size)
    low = 0.0 if family.pixel_range == "unit" else -1.0
    assert images.min() >= low and images.max() <= 1.0
    recon = family.reconstruct(batch(family, 5))
    assert (recon is None) == (not family.has_encoder)
    if recon is not None:
        assert recon.shape == images.shape


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge", "lsgan", "wgan-gp"])
def test_gan_loss_variants_run(loss, build_family):
    extra = ["model.discriminator.norm=layer"] if loss == "wgan-gp" else []
    _, family = build_family("gan", f"model.loss={loss}", "model.discriminator.spectral_norm=true", *extra)
    losses, logs = phase_named(family, "discriminator").losses(x := batch(family), labels_for(x), 0)
    assert torch.isfinite(losses["discriminator"])
    assert ("gp" in logs) == (loss == "wgan-gp")
    assert 0.0 <= logs["acc/d_real"] <= 1.0


def test_gan_n_critic_sets_generator_interval(build_family):
    _, family = build_family("gan", "model.n_critic=5")
    assert {p.name: p.interval for p in family.phases} == {"discriminator": 1, "generator": 5}


def test_gan_ema_tracks_generator(build_family):
    _, family = build_family("gan", "model.ema.enabled=true", "model.ema.decay=0.5", "model.ema.start_step=0")
    with torch.no_grad():
        for p in family.generator.parameters():
            p.add_(1.0)
    before = [p.clone() for p in family.generator_ema.parameters()]
    phase_named(family, "generator").after(10)
    for old, new, live in zip(before, family.generator_ema.parameters(), family.generator.parameters()):
        assert torch.allclose(new, 0.5 * old + 0.5 * live)


def test_vae_kl_warmup(build_family):
    _, family = build_family("vae", "model.kl_warmup_steps=100", "model.beta=2.0")
    assert family.beta_at(0) == 0.0 and family.beta_at(50) == pytest.approx(1.0) and family.beta_at(500) == 2.0


def test_vae_gaussian_learned_std_is_trained(build_family):
    _, family = build_family(
        "vae", "model.likelihood=gaussian", "model.pixel_range=symmetric", "model.decoder_std=null"
    )
    assert any(p is family.decoder.log_std for p in family.networks()["decoder"].parameters())
