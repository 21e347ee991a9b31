"""SNGAN's ResNet networks (``model.net.arch=resnet``): their layers, sizes, spectral norm and
pooling, every family training on them, and a discriminator and generator that learn."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from runner_utils import FAST, compose_config, read_events, run_cli, scalar_series
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.data.shapes import render_shapes
from vaegan_runner.models import family_names
from vaegan_runner.models.nets import NetConfig, body_blocks, build_decoder, build_encoder, sizes_with_blocks
from vaegan_runner.models.nets.resnet import DiscriminatorBlock, GlobalPool, OptimizedBlock, UpBlock
from vaegan_runner.run_schema import validate

SIZES_AND_CHANNELS = [(32, 3), (32, 1), (64, 3), (64, 1)]


def resnet(width: int = 8, norm: str = "batch") -> NetConfig:
    return NetConfig(arch="resnet", width=width, hidden=[8], norm=norm)


def shapes_batch(n: int, size: int, channels: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n shapes images in [-1, 1] and their labels."""
    images, labels = render_shapes(n, size, channels, torch.Generator().manual_seed(seed))
    return images.float() / 127.5 - 1, labels


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- the networks ------------------------------------------------------------------------------
@pytest.mark.parametrize("size,channels", SIZES_AND_CHANNELS)
def test_generator_makes_images_from_a_4x4_map_doubled_per_block(size, channels):
    G = build_decoder(resnet(), channels, size, 16)
    sides = []
    for block in G.blocks:
        block.register_forward_hook(lambda _m, _i, out: sides.append(out.shape[-1]))
    out = G(torch.randn(5, 16))
    assert out.shape == (5, channels, size, size)
    assert sides == [8 * 2**i for i in range(int(math.log2(size // 4)))]  # 8, 16, 32 (, 64)
    assert all(isinstance(b, UpBlock) for b in G.blocks)
    assert G.project[0].out_features == 16 * 4 * 4  # 2 x width channels on the 4x4 map


@pytest.mark.parametrize("size,channels", SIZES_AND_CHANNELS)
def test_discriminator_features_are_block_outputs_then_the_pooled_vector(size, channels):
    width = 8
    D = build_encoder(resnet(width), channels, size, 1, "none", True).eval()  # eval: no power iteration per pass
    x = torch.rand(4, channels, size, size) * 2 - 1
    feats = D.features(x)
    downs = int(math.log2(size // 4)) - 2
    expected = [(4, width, size // 2, size // 2)]
    expected += [(4, width, size // 2 ** (i + 2), size // 2 ** (i + 2)) for i in range(downs)]
    expected += [(4, width, 8, 8)] * 2 + [(4, width)]
    assert [tuple(f.shape) for f in feats] == expected
    assert len(feats) == len(D.blocks) and range(len(feats), len(feats) + 1) == body_blocks(resnet(), size)
    assert D.feature_dim == width
    assert torch.allclose(D.head(feats[-1]), D(x), atol=1e-6)  # what the projection and class heads read
    kinds = [type(b) for b in D.blocks]
    assert kinds == [OptimizedBlock, *[DiscriminatorBlock] * (downs + 2), GlobalPool]
    assert [b.downsample for b in D.blocks[1:-1]] == [True] * downs + [False, False]


def test_parameter_counts_are_sngans_layers():
    """At width 128 (G 256 channels, D 128) on 32x32x3 images, the counts equal those of the
    paper's layers: G a linear z -> 4x4x256, three up blocks (two 3x3 convs, a 1x1 shortcut, two
    batch norms), batch norm and a 3x3 conv to RGB; D the optimised block, a down block (1x1
    shortcut), two blocks with identity shortcuts and a linear head. One more block each at 64."""
    z, g, d = 128, 256, 128

    def conv(c_in, c_out, k):
        return c_in * c_out * k * k + c_out

    up = 2 * conv(g, g, 3) + conv(g, g, 1) + 2 * 2 * g
    expected_g = {n: (z + 1) * g * 16 + n * up + 2 * g + conv(g, 3, 3) for n in (3, 4)}
    first = conv(3, d, 3) + conv(d, d, 3) + conv(3, d, 1)
    down, plain = 2 * conv(d, d, 3) + conv(d, d, 1), 2 * conv(d, d, 3)
    expected_d = {n: first + (n - 2) * down + 2 * plain + d + 1 for n in (3, 4)}
    net = resnet(128)
    for n, size in ((3, 32), (4, 64)):
        assert count(build_decoder(net, 3, size, z)) == expected_g[n]
        assert count(build_encoder(net, 3, size, 1, "none", True)) == expected_d[n]
    assert (expected_g[3], expected_d[3]) == (4_276_739, 1_053_825)


def test_spectral_norm_wraps_every_layer_of_the_discriminator_only_when_asked():
    net = resnet()
    weighted = (nn.Conv2d, nn.Linear)
    with_sn = build_encoder(net, 3, 32, 1, "none", True)
    without = build_encoder(net, 3, 32, 1, "none", False)
    layers = [m for m in with_sn.modules() if isinstance(m, weighted)]
    assert len(layers) == 3 + 3 + 2 + 2 + 1  # optimised block, down block, two blocks, head
    assert all(hasattr(m, "parametrizations") for m in layers)
    assert not any(hasattr(m, "parametrizations") for m in without.modules() if isinstance(m, weighted))
    G = build_decoder(net, 3, 32, 16)
    assert not any(hasattr(m, "parametrizations") for m in G.modules())
    with_sn.train()
    for _ in range(30):  # power iterations, one per training forward pass
        with_sn(torch.rand(2, 3, 32, 32))
    sigma = torch.linalg.matrix_norm(with_sn.head.weight.detach(), ord=2)
    assert sigma == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("spectral_norm,reduce", [(True, torch.sum), (False, torch.mean)])
def test_pooling_is_sngans_sum_with_spectral_norm_and_a_mean_without(spectral_norm, reduce):
    D = build_encoder(resnet(), 3, 32, 1, "none", spectral_norm)
    feats = D.features(torch.rand(3, 3, 32, 32) * 2 - 1)
    assert torch.allclose(feats[-1], reduce(torch.relu(feats[-2]), dim=(2, 3)), atol=1e-6)


def test_norms_go_where_asked():
    def norms(module):
        return [m for m in module.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]

    assert norms(build_encoder(resnet(), 3, 32, 1, "none", True)) == []  # SNGAN's D has none
    assert len(norms(build_encoder(resnet(), 3, 32, 1, "batch"))) == 1 + 2 * 3  # optimised block: 1; others: 2
    assert all(isinstance(m, nn.GroupNorm) for m in norms(build_encoder(resnet(), 3, 32, 1, "layer")))
    assert len(norms(build_decoder(resnet(), 3, 32, 16))) == 2 * 3 + 1  # two per up block, one before the output
    assert norms(build_decoder(resnet(norm="none"), 3, 32, 16)) == []


# --- sizes --------------------------------------------------------------------------------------
def test_block_counts_and_sizes():
    net = resnet()
    assert body_blocks(net, 32) == range(5, 6) and body_blocks(net, 64) == range(6, 7)
    assert body_blocks(net) == range(5, 7)
    assert sizes_with_blocks(5, "resnet") == [32] and sizes_with_blocks(6, "resnet") == [64]
    assert sizes_with_blocks(7, "resnet") == []
    assert sizes_with_blocks(3) == [32, 56] and body_blocks(NetConfig("conv", 8, [8], "batch")) == range(2, 6)  # conv


@pytest.mark.parametrize("size", [28, 16, 48, 128])
def test_an_image_size_resnet_cannot_make_is_refused(size):
    with pytest.raises(ConfigError) as err:
        validate(compose_config(["model=gan", "model.net.arch=resnet", "dataset=shapes", f"dataset.image_size={size}"]))
    assert err.value.key == "dataset.image_size"
    message = str(err.value)
    assert f"{size} cannot be made by the resnet networks" in message and "32 and 64" in message
    assert "\n" not in message


@pytest.mark.slow
def test_cli_refuses_a_size_resnet_cannot_make_with_exit_2(tmp_path):
    result = run_cli(["model=vae", "model.net.arch=resnet", "dataset=shapes", "dataset.image_size=28"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "dataset.image_size" in result.stderr and "32 and 64" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


# --- every family on it -------------------------------------------------------------------------
FAMILY_CASES = [(m, ()) for m in family_names()] + [
    ("gan", ("model.conditional=true",)),  # the projection discriminator on the pooled vector
    ("gan", ("model.conditional=true", "model.auxiliary_weight=1.0")),  # ACGAN's class head
    ("gan", ("model.info_codes=3",)),  # InfoGAN's Q head
    ("gan", ("model.loss=wgan-gp", "model.discriminator.norm=layer")),  # gradient penalty through the blocks
    ("vaegan", ("model.feature_layer=-2",)),  # L_llike on the last 8x8 map
    ("vaegan", ("model.conditional=true",)),
]


@pytest.mark.parametrize("size,channels", [(32, 3), (64, 1)])
@pytest.mark.parametrize("model,extra", FAMILY_CASES)
def test_every_family_trains_on_resnet(model, extra, size, channels, build_family, phase_runner):
    run, family = build_family(model, "model.net.arch=resnet", *extra, channels=channels, image_size=size)
    runner = phase_runner(run, family)
    x, y = shapes_batch(8, size, channels)
    if family.pixel_range == "unit":
        x = (x + 1) / 2
    before = {n: [p.detach().clone() for p in m.parameters()] for n, m in family.networks().items()}
    for step in range(3):
        for phase in family.phases:
            if step % phase.interval == 0:
                logs = runner.run(phase, x, y % 3, step)
                assert all(torch.isfinite(v).all() for v in logs.values()), (phase.name, logs)
    for name, module in family.networks().items():  # every network learned something
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters())), name
    family.eval()
    samples = family.generate(family.sample_latent(4))
    assert samples.shape == (4, channels, size, size) and torch.isfinite(samples).all()


def test_projection_and_vaegan_features_read_the_resnet_features(build_family):
    width = 8  # the fixture's model.net.width
    _, gan = build_family("gan", "model.net.arch=resnet", "model.conditional=true", channels=3, image_size=32)
    assert gan.discriminator.embed.weight.shape == (3, width)  # one embedding of the pooled vector per class
    _, vaegan = build_family("vaegan", "model.net.arch=resnet", "model.feature_layer=-2", channels=3, image_size=32)
    x, y = shapes_batch(4, 32, 3)
    features, logits, _ = vaegan.discriminate(x, y)
    assert features.shape == (4, width * 8 * 8) and logits.shape == (4, 1)


# --- it learns ----------------------------------------------------------------------------------
def test_gan_discriminator_and_generator_learn_on_a_tiny_batch(build_family, phase_runner):
    """SNGAN's setting (spectral norm, no norm in D, hinge loss): D alone, against a fixed G,
    learns to tell 16 real shapes from fakes; then G alone, against the fixed D, learns to fool it."""
    run, family = build_family(
        "gan",
        "model.net.arch=resnet",
        "model.discriminator.norm=none",
        "model.discriminator.spectral_norm=true",
        "model.loss=hinge",
        channels=3,
        image_size=32,
    )
    runner = phase_runner(run, family)
    x, y = shapes_batch(16, 32, 3)
    d_phase, g_phase = family.phases
    d_losses = [runner.run(d_phase, x, y, step)["d"].item() for step in range(25)]
    last = runner.run(d_phase, x, y, 25)
    assert sum(d_losses[-5:]) / 5 < 0.1 * sum(d_losses[:5]) / 5, d_losses
    assert last["acc/d_real"] == 1.0 and last["acc/d_fake"] == 1.0
    g_losses = [runner.run(g_phase, x, y, step)["g"].item() for step in range(20)]
    assert sum(g_losses[-5:]) / 5 < sum(g_losses[:5]) / 5 - 1.0, g_losses  # hinge G loss: -D(G(z))


@pytest.mark.slow
def test_cli_trains_a_resnet_gan(tmp_path):
    args = [
        *FAST,
        "model=gan",
        "model.net.arch=resnet",
        "model.discriminator.norm=none",
        "model.discriminator.spectral_norm=true",
        "dataset.image_size=32",
        "dataset.channels=3",
        "trainer.max_steps=6",
        "log.every_n_steps=3",
        "eval.metrics=[]",  # the training is what is tested here; metrics have their own tests
        "eval.final_metrics=[]",
        "hydra.run.dir=run",
    ]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    d_curve = [v for _, v in scalar_series(read_events(run_dir), "loss/d")]
    assert len(d_curve) == 2 and all(math.isfinite(v) for v in d_curve)
    assert json.loads((run_dir / "metrics.json").read_text())["step"] == 6
