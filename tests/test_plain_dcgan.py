"""scripts/plain_dcgan.py: Radford et al.'s DCGAN written by hand, its samples scored by vaegan-eval's own path."""

import importlib.util
import json
import shlex

import numpy as np
import pytest
import torch
from torch import nn

from runner_utils import REPO
from vaegan_runner.cli.eval import main as eval_main
from vaegan_runner.metrics import domain_classifier
from vaegan_runner.metrics.given_samples import load_samples

spec = importlib.util.spec_from_file_location("plain_dcgan", REPO / "scripts" / "plain_dcgan.py")
plain_dcgan = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plain_dcgan)

SHAPES_32 = ["dataset.image_size=32", "dataset.channels=3", "dataset.n_train=512", "dataset.n_test=128"]


def layers(net: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in net if isinstance(m, kind)]


@pytest.mark.parametrize("size", [32, 64])
def test_the_networks_are_radfords(size):
    width = 8
    G = plain_dcgan.Generator(100, width, 3, size)
    D = plain_dcgan.Discriminator(width, 3, size)
    ups = layers(G, nn.ConvTranspose2d)
    top = width * size // 8  # 4w at 32x32, 8w at 64x64
    assert [(c.in_channels, c.out_channels) for c in ups][0] == (100, top)
    assert ups[-1].out_channels == 3 and ups[-2].out_channels == width
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in ups[1:])
    assert len(layers(G, nn.BatchNorm2d)) == len(ups) - 1 and isinstance(G[-1], nn.Tanh)
    z = torch.randn(5, 100)
    with torch.no_grad():
        x = G.eval()(z)
        logits = D.eval()(x)
    assert x.shape == (5, 3, size, size) and x.abs().max() <= 1
    assert logits.shape == (5,)
    convs = layers(D, nn.Conv2d)
    assert [c.out_channels for c in convs] == [width * 2**i for i in range(len(convs) - 1)] + [1]
    assert isinstance(D[1], nn.LeakyReLU) and D[1].negative_slope == 0.2  # no batch norm after the first layer
    assert len(layers(D, nn.BatchNorm2d)) == len(convs) - 2


def test_sizes_that_are_not_four_times_a_power_of_two_are_refused():
    with pytest.raises(ValueError, match="power-of-two image size"):
        plain_dcgan.Generator(100, 8, 3, 28)


def test_dcgan_init():
    torch.manual_seed(0)
    G = plain_dcgan.Generator(100, 64, 3, 32)
    G.apply(plain_dcgan.dcgan_init)
    first = G[0].weight.detach()
    assert first.mean().abs() < 1e-3 and first.std().item() == pytest.approx(0.02, rel=0.02)
    bn = layers(G, nn.BatchNorm2d)[0]
    assert bn.weight.detach().mean().item() == pytest.approx(1.0, abs=0.01) and bn.bias.abs().max() == 0


def test_a_seed_trains_the_same_generator():
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    a, *_ = plain_dcgan.train(images, epochs=1, seed=3, width=8, batch_size=16)
    b, *_ = plain_dcgan.train(images, epochs=1, seed=3, width=8, batch_size=16)
    c, seconds, cpu_seconds = plain_dcgan.train(images, epochs=2, seed=4, width=8, batch_size=16)
    assert np.array_equal(plain_dcgan.samples_uint8(a, 8), plain_dcgan.samples_uint8(b, 8))
    assert not np.array_equal(plain_dcgan.samples_uint8(a, 8), plain_dcgan.samples_uint8(c, 8))
    assert len(seconds) == len(cpu_seconds) == 2 and min(cpu_seconds) > 0


@pytest.mark.slow
def test_samples_round_trip_through_vaegan_eval(tmp_path, monkeypatch, capsys):
    """On shapes at 32x32x3: the .npz holds what G draws, vaegan-eval reads it back unchanged,
    and the script's scores are vaegan-eval's own for that file, stamp included; a second call
    scores the same samples without training again."""
    monkeypatch.setenv("VAEGAN_CACHE_DIR", str(tmp_path / "cache"))  # a classifier of its own (quick recipe)
    monkeypatch.setattr(domain_classifier, "MIN_STEPS", 8)
    monkeypatch.setattr(domain_classifier, "COLOUR", domain_classifier.Recipe(8, 16, 4, 1, 0, False))
    out = tmp_path / "plain"
    argv = ["--dataset", "shapes", "--max-steps", "3", "--width", "8", "--n-samples", "128"]
    argv += ["--seeds", "0", "--out", str(out), *SHAPES_32]
    assert plain_dcgan.main(argv) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result == json.loads((out / "seed=0" / "result.json").read_text())
    npz = out / "seed=0" / "samples.npz"
    with np.load(npz) as arrays:
        stored = arrays["images"]
    assert stored.dtype == np.uint8 and stored.shape == (128, 3, 32, 32)
    assert np.array_equal(load_samples(npz, 3, 32).numpy(), stored)
    assert set(result["metrics"]) == {
        "domain_fid",
        "classifier_score",
        "class_coverage",
        "precision",
        "recall",
        "diversity",
    }
    assert result["metric_counts"]["domain_fid"]["samples"] == 128
    command = shlex.split(result["eval_command"])
    assert command[:3] == ["vaegan-eval", f"samples={npz}", "dataset=shapes"] and command[4:] == SHAPES_32

    report = tmp_path / "cli.json"
    assert eval_main([*command[1:], f"out={report}"]) == 0
    cli = json.loads(report.read_text())
    assert cli["metrics"] == result["metrics"] and cli["metric_counts"] == result["metric_counts"]

    trained_at = npz.stat().st_mtime_ns
    assert plain_dcgan.main(argv) == 0
    again = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert npz.stat().st_mtime_ns == trained_at and again["s_per_epoch"] == result["s_per_epoch"]
    assert again["metrics"] == result["metrics"]


def test_only_dataset_overrides_are_taken(capsys):
    with pytest.raises(SystemExit):
        plain_dcgan.main(["--dataset", "shapes", "trainer.batch_size=32"])
    assert "only dataset.<key>=<value> overrides" in capsys.readouterr().err


def test_an_image_size_the_dcgan_cannot_make_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEGAN_CACHE_DIR", str(tmp_path))
    code = plain_dcgan.main(
        ["--dataset", "shapes", "--out", str(tmp_path), "dataset.image_size=28", "dataset.n_train=64"]
    )
    assert code == 2 and "power-of-two image size" in capsys.readouterr().err
    assert not list(tmp_path.glob("seed=*"))
