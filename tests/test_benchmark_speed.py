"""scripts/benchmark_speed.py: the plain loops it times against the runner do the runner's work."""

import importlib.util
import json
import statistics
import sys

import pytest
import torch

from runner_utils import REPO
from vaegan_runner.models.losses import discretized_logistic_nll

sys.path.insert(0, str(REPO / "scripts"))
spec = importlib.util.spec_from_file_location("benchmark_speed", REPO / "scripts" / "benchmark_speed.py")
benchmark_speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_speed)


def test_the_plain_discretized_logistic_is_the_runners():
    torch.manual_seed(0)
    logits = 3 * torch.randn(4, 3, 8, 8)
    x = torch.randint(0, 256, (4, 3, 8, 8)).float() / 255
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])  # the edge bins, which take the tails
    log_scale = torch.randn(3, 1, 1) - 2
    plain = benchmark_speed.plain_discretized_logistic_nll(logits, log_scale, x)
    assert torch.allclose(plain, discretized_logistic_nll(torch.sigmoid(logits), log_scale, x), rtol=1e-6)


@pytest.mark.parametrize("size", [32, 64])
def test_the_cifar10_vae_and_gan_configs_are_ones_the_plain_loops_cover(size):
    data, label = benchmark_speed.dataset_overrides(size, "cifar10")
    assert label == f"CIFAR-10 {size}x{size}x3"
    for model in ("vae", "gan"):
        run = benchmark_speed.validated([*benchmark_speed.MODEL_OVERRIDES[model], *data, "device=cpu"])
        assert (run.dataset.name, run.dataset.image_size) == ("cifar10", size)
        benchmark_speed.check_plain_matches(run)  # exits when the plain loop would train something else
    assert run.model.name == "gan"


def test_a_likelihood_the_plain_vae_does_not_write_is_refused():
    run = benchmark_speed.validated(
        [
            *benchmark_speed.MODEL_OVERRIDES["vae"],
            "dataset=shapes",
            "model.likelihood=gaussian",
            "model.pixel_range=unit",
        ]
    )
    with pytest.raises(SystemExit, match="model.likelihood"):
        benchmark_speed.check_plain_matches(run)


@pytest.mark.parametrize("scale", ["channel", "pixel"])
def test_the_plain_vae_runs_on_a_discretized_logistic_family(build_family, scale):
    """The plain VAE starts from the family's weights (the decoder's scale per channel is not one
    of its network's; per pixel, the decoder's second half) and trains copies of its own: the
    family's weights stay as they were."""
    run, family = build_family(
        "vae",
        "model.prior=gaussian",
        "model.likelihood=discretized_logistic",
        f"model.logistic_scale={scale}",
        channels=3,
    )
    benchmark_speed.check_plain_matches(run)
    before = {k: v.clone() for k, v in family.state_dict().items()}
    steps = benchmark_speed.plain_vae_steps(run, family, torch.randint(0, 256, (128, 3, 28, 28), dtype=torch.uint8))
    assert next(steps) == next(steps) == run.trainer.batch_size
    steps.close()
    assert all(torch.equal(before[k], v) for k, v in family.state_dict().items())


@pytest.mark.slow
def test_throughput_and_families_time_each_layout(tmp_path, monkeypatch):
    """--channels-last false true: one runner side per layout against the plain loop; families
    entries of one family: the later entries' img/s relative to the first's, chunk by chunk."""
    report = tmp_path / "speed.json"
    tiny = ["model.net.width=8", "dataset.n_train=256", "dataset.n_test=64"]
    argv = ["benchmark_speed.py", "--sections", "throughput", "families", "--sizes", "16", "--repeats", "2"]
    argv += ["--steps-per-chunk", "1", "--warmup", "1", "--threads", "1", "--channels-last", "false", "true"]
    argv += ["--families", "vae:trainer.channels_last=false", "vae:trainer.channels_last=true", "gan"]
    monkeypatch.setattr(sys, "argv", [*argv, "--set", *tiny, "--json", str(report)])
    monkeypatch.delenv("VAEGAN_DATA_DIR", raising=False)  # shapes, not MNIST, at any size
    benchmark_speed.main()
    rows = json.loads(report.read_text())
    assert [(r["model"], r["channels_last"]) for r in rows["throughput"]] == [
        ("vae", False),
        ("vae", True),
        ("gan", False),
        ("gan", True),
    ]
    for r in rows["throughput"]:
        runner, plain = r["chunks"]["runner"], r["chunks"]["plain"]
        assert len(runner) == len(plain) == 2
        assert r["ratio"] == pytest.approx(statistics.median(a / b for a, b in zip(runner, plain)))
    off, on, gan = rows["families"]
    assert off["vs_first"] is None and on["vs_first"] == "vae:trainer.channels_last=false"
    ratios = [a / b for a, b in zip(on["chunks"], off["chunks"])]
    assert on["img_s_vs_first"] == pytest.approx(statistics.median(ratios))
    assert gan["time_vs_gan"] == 1.0 and on["epoch_images"] == 256
    assert on["s_per_epoch"] == pytest.approx(256 / on["img_s"])
