"""The GAN's InfoGAN option (``model.info_codes``): the code in the latent, the two losses, what
each phase updates, that G learns to carry the code, and the settings it refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from runner_utils import FAST, LOGGED_AT_6_AND_12, compose_config, read_events
from vaegan_runner.cli.sample import main as sample_main
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.data import load_data
from vaegan_runner.data.pixels import to_pixels
from vaegan_runner.run_schema import validate
from vaegan_runner.train import run as train_run
from vaegan_runner.training.checkpoint_migrations import with_added_keys

K = 4


def phase(family, name):
    return next(p for p in family.phases if p.name == name)


def batch(n=16):
    return torch.rand(n, 1, 28, 28) * 2 - 1


def test_latent_is_z_then_a_uniform_one_hot_code(build_family):
    _, family = build_family("gan", f"model.info_codes={K}")
    z = family.sample_latent(4000, torch.Generator().manual_seed(0))
    assert z.shape == (4000, family.latent_dim + K)
    code = z[:, family.latent_dim :]
    assert torch.equal(code.sum(1), torch.ones(4000)) and set(code.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(code.mean(0), torch.full((K,), 1 / K), atol=0.03)
    assert abs(z[:, : family.latent_dim].std().item() - 1) < 0.05
    assert family.generate(family.sample_latent(5)).shape == (5, 1, 28, 28)
    assert family.discriminator.code_head.out_features == K


def test_without_codes_the_gan_is_the_plain_one(build_family):
    """info_codes=0 (the default) builds exactly the networks the GAN always had."""
    _, plain = build_family("gan")
    _, coded = build_family("gan", f"model.info_codes={K}")
    assert plain.sample_latent(3).shape == (3, plain.latent_dim)
    assert not hasattr(plain.discriminator, "code_head")
    d_plain, d_coded = plain.discriminator.state_dict(), coded.discriminator.state_dict()
    assert {f"body.{k}" for k in d_plain} | {"code_head.weight", "code_head.bias"} == set(d_coded)


def test_losses_add_the_weighted_code_cross_entropy(build_family):
    _, family = build_family("gan", f"model.info_codes={K}", "model.info_weight=2.0")
    x = batch()
    y = torch.zeros(16, dtype=torch.long)
    losses, logs = phase(family, "discriminator").losses(x, y, 0)
    assert logs["info"].item() == pytest.approx(torch.log(torch.tensor(float(K))).item(), rel=0.2)  # Q at chance
    assert 0.0 <= logs["acc/info"].item() <= 1.0
    assert losses["discriminator"].item() == pytest.approx((logs["d"] + 2.0 * logs["info"]).item())
    losses, logs = phase(family, "generator").losses(x, y, 0)
    assert losses["generator"].item() == pytest.approx((logs["g"] + 2.0 * logs["g_info"]).item())


def test_each_phase_updates_its_own_network_and_q_with_d(build_family, phase_runner):
    run, family = build_family("gan", f"model.info_codes={K}")
    runner = phase_runner(run, family)
    x, y = batch(), torch.zeros(16, dtype=torch.long)
    for name, changes in (("discriminator", "discriminator"), ("generator", "generator")):
        before = {n: [p.detach().clone() for p in m.parameters()] for n, m in family.networks().items()}
        family.zero_grad(set_to_none=True)
        runner.run(phase(family, name), x, y, 0)
        for net, module in family.networks().items():
            changed = any(not torch.equal(a, b) for a, b in zip(before[net], module.parameters()))
            assert changed == (net == changes), f"{name} phase: {net} changed={changed}"
    head = family.discriminator.code_head.weight
    assert head.grad is None or head.grad.abs().sum() == 0  # the generator phase left Q's head alone


def test_generator_learns_to_carry_the_code(build_family, phase_runner):
    """After a short run on shapes Q recovers the code of fresh fakes far above chance (1/K):
    G has made the categories tell apart. A generator that ignored the code would leave Q at
    chance, whatever Q learned."""
    run, family = build_family("gan", f"model.info_codes={K}", "dataset.n_train=1024")
    runner = phase_runner(run, family)
    data = load_data(run.dataset, torch.device("cpu"))
    log = type("NoLog", (), {"add": lambda self, logs: None})()
    step = 0
    for epoch in range(7):  # 32 batches of 32 an epoch: 224 steps
        for images, labels in data.train.batches(32, epoch=epoch, seed=0):
            runner.run_due(family.phases, to_pixels(images, family.pixel_range), labels, step, log)
            step += 1
    family.eval()
    with torch.no_grad():
        z = family.sample_latent(512, torch.Generator().manual_seed(1))
        _, predicted = family.discriminator.codes(family.generate(z))
    accuracy = (predicted.argmax(1) == z[:, family.latent_dim :].argmax(1)).float().mean().item()
    assert accuracy > 0.8, accuracy


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.info_codes=1"], "model.info_codes: is the number of categories"),
        (["model.info_codes=-2"], "model.info_codes: is the number of categories"),
        (["model.info_codes=10", "model.conditional=true"], "model.info_codes: InfoGAN's code is for unlabelled"),
        (["model.info_codes=10", "model.info_weight=-1"], "model.info_weight"),
        (["model.info_weight=2"], "model.info_weight: weights InfoGAN's code loss, which is off"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(["model=gan", "dataset=shapes", *overrides]))


def test_checkpoints_from_before_the_option_load_without_a_code():
    old = OmegaConf.to_container(compose_config(["model=gan", "dataset=shapes"]), resolve=True)
    del old["model"]["info_codes"], old["model"]["info_weight"]
    model = validate(OmegaConf.create(with_added_keys(old))).model
    assert model.info_codes == 0 and model.info_weight == 1.0


def short_run(run_dir, *overrides):
    return train_run(compose_config(["model=gan", *FAST, *LOGGED_AT_6_AND_12, *overrides]), run_dir)


@pytest.mark.slow
def test_run_logs_the_code_losses_and_a_row_per_category(tmp_path):
    run_dir = tmp_path / "infogan"
    final = short_run(run_dir, "model.info_codes=3")
    events = read_events(run_dir)
    for tag in ("loss/info", "acc/info", "loss/g_info", "loss/d", "loss/g"):
        assert [e.step for e in events.Scalars(tag)] == [6, 12], tag
    assert sorted(events.Tags()["images"]) == ["samples", "samples_by_code"]
    grid = events.Images("samples_by_code")[-1]
    assert (grid.width, grid.height) == (8 * 30 + 2, 3 * 30 + 2)  # 8 columns of z, one row per category
    assert all(math.isfinite(v) for v in final.values())

    out = tmp_path / "codes.png"
    assert sample_main([str(run_dir), "mode=codes", "n=5", f"out={out}"]) == 0
    assert Image.open(out).size == (5 * 30 + 2, 3 * 30 + 2)
    saved = np.load(out.with_suffix(".npz"))
    assert saved["codes"].tolist() == [0] * 5 + [1] * 5 + [2] * 5 and saved["images"].shape == (15, 1, 28, 28)


@pytest.mark.slow
def test_modes_a_gan_cannot_draw_name_codes_among_the_allowed(tmp_path, capsys):
    short_run(tmp_path / "infogan", "model.info_codes=3")
    assert sample_main([str(tmp_path / "infogan"), "mode=interpolate", f"out={tmp_path / 'i.png'}"]) == 2
    assert "allowed for this model: mode=sample, codes" in capsys.readouterr().err


@pytest.mark.slow
def test_codes_mode_is_refused_for_a_run_without_a_code(tmp_path, capsys):
    short_run(tmp_path / "plain")
    assert sample_main([str(tmp_path / "plain"), "mode=codes", f"out={tmp_path / 'c.png'}"]) == 2
    assert "mode: mode=codes draws a row per category of InfoGAN's code" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()
