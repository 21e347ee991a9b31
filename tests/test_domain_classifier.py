"""The domain classifier: training, the on-disk cache, RNG isolation and shapes, on ``shapes`` data."""

import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from vaegan_runner.config.checks import typed
from vaegan_runner.data import dataset_schema, load_data
from vaegan_runner.data.sources import in_memory_data
from vaegan_runner.metrics.domain_classifier import (
    FEATURE_DIM,
    DomainClassifier,
    cache_path,
    domain_classifier,
    fingerprint,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dataset"
CPU = torch.device("cpu")


def dataset(name: str, **overrides):
    node = OmegaConf.merge(OmegaConf.load(CONFIGS / f"{name}.yaml"), overrides)
    if "cache_dir" in node:  # keep the decoded-dataset cache out of the tests
        node.cache_dir = None
    return load_data(typed(dataset_schema(name), node, "dataset"), CPU)


def shapes(**overrides):
    return dataset("shapes", **{"image_size": 16, "n_train": 2000, "n_test": 500, **overrides})


class Trained:
    """One training run on shapes, shared by the tests of this module."""

    def __init__(self, cache_dir: Path):
        self.data, self.cache_dir, self.logs = shapes(), cache_dir, []
        self.rng_before = torch.get_rng_state()
        self.model = domain_classifier(self.data, cache_dir, CPU, log=self.logs.append)
        self.rng_after = torch.get_rng_state()
        self.probe = self.data.test.images[:64].float() / 255

    def outputs(self, model: DomainClassifier) -> tuple[torch.Tensor, torch.Tensor]:
        return model.features_and_logits(self.probe)


@pytest.fixture(scope="session")  # session: kept when the tiers split this file
def trained(tmp_path_factory) -> Trained:
    return Trained(tmp_path_factory.mktemp("cache"))


@pytest.mark.slow
def test_trains_to_high_accuracy_and_caches(trained):
    assert trained.model.test_accuracy >= 0.97
    path = cache_path(trained.data, trained.cache_dir)
    assert path.is_file() and path.parent == trained.cache_dir / "domain_classifier"
    assert path.name.startswith("shapes-1x16x16-") and path.suffix == ".pt"
    assert not list(path.parent.glob("*.tmp"))
    assert len(trained.logs) == 1 and "trained in" in trained.logs[0] and "accuracy" in trained.logs[0]


@pytest.mark.slow
def test_training_leaves_global_rng_alone(trained):
    assert torch.equal(trained.rng_before, trained.rng_after)


@pytest.mark.slow
def test_second_call_loads_the_cache(trained):
    logs = []
    loaded = domain_classifier(trained.data, trained.cache_dir, CPU, log=logs.append)
    assert len(logs) == 1 and "loaded" in logs[0]  # not retrained (no wall-clock bound: CI machines are busy)
    assert loaded.test_accuracy == trained.model.test_accuracy
    for a, b in zip(trained.outputs(loaded), trained.outputs(trained.model)):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_corrupt_cache_is_retrained_identically(trained, tmp_path):
    shutil.copytree(trained.cache_dir, tmp_path, dirs_exist_ok=True)
    path = cache_path(trained.data, tmp_path)
    path.write_bytes(b"not a torch file")
    logs = []
    retrained = domain_classifier(trained.data, tmp_path, CPU, log=logs.append)
    assert "ignoring unreadable cache file" in logs[0] and "trained in" in logs[1]
    torch.load(path, weights_only=True)  # rewritten whole
    # same data, same seed: the very same network
    assert retrained.test_accuracy == trained.model.test_accuracy
    for a, b in zip(trained.outputs(retrained), trained.outputs(trained.model)):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_features_and_logits(trained):
    model, probe = trained.model, trained.probe
    features, logits = model.features_and_logits(probe)
    assert features.shape == (64, FEATURE_DIM) == (64, model.feature_dim) and torch.isfinite(features).all()
    assert logits.shape == (64, model.num_classes) == (64, 3)
    assert torch.equal(model.features(probe), features) and torch.equal(model.logits(probe), logits)
    assert not features.requires_grad and not model.training


@pytest.mark.slow
def test_cache_key_follows_the_data_and_seed(trained, tmp_path):
    path = cache_path(trained.data, tmp_path)
    assert cache_path(shapes(), tmp_path) == path  # same content, rendered again
    assert cache_path(trained.data, tmp_path, seed=1) != path
    assert cache_path(shapes(seed=1), tmp_path).name != path.name
    assert cache_path(shapes(n_train=1999), tmp_path) != path
    assert cache_path(shapes(binarize=True), tmp_path) != path  # trained on Bernoulli samples
    assert cache_path(shapes(image_size=17), tmp_path).name.startswith("shapes-1x17x17-")
    assert cache_path(shapes(channels=3), tmp_path).name.startswith("shapes-3x16x16-")


@pytest.mark.parametrize("channels,size", [(1, 8), (1, 28), (3, 32), (3, 64), (1, 13)])
def test_any_image_shape(channels, size):
    model = DomainClassifier(channels, size, size, num_classes=10)
    features, logits = model.features_and_logits(torch.rand(5, channels, size, size))
    assert features.shape == (5, FEATURE_DIM) and logits.shape == (5, 10)


def test_unlabelled_data_is_refused(tmp_path):
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    data = in_memory_data("image_folder", (images, torch.zeros(4)), (images, torch.zeros(4)), None, CPU)
    with pytest.raises(ValueError, match="class labels"):
        domain_classifier(data, tmp_path, CPU)
    assert not (tmp_path / "domain_classifier").exists()


@pytest.mark.real_data
def test_real_data_fingerprint_tells_the_datasets_apart(real_data_root):
    # No wall-clock bound here (a timed test fails on a busy machine): _split_digest hashes a
    # strided subset of the pixels, the per-image sums and the labels, so it stays cheap.
    mnist = dataset("mnist", root=str(real_data_root), download=False)
    fashion = dataset("fashion_mnist", root=str(real_data_root), download=False)
    key = fingerprint(mnist, seed=0)
    assert key == fingerprint(dataset("mnist", root=str(real_data_root), download=False), seed=0)
    assert key != fingerprint(fashion, seed=0) and key != fingerprint(mnist, seed=1) and len(key) == 16


def test_colour_images_get_the_augmented_recipe_and_grey_keep_theirs():
    from vaegan_runner.metrics.domain_classifier import COLOUR, GREY, augment, recipe_for

    assert recipe_for(3) is COLOUR and recipe_for(1) is GREY
    assert set(GREY.fingerprint_fields()) == {"pool_above", "epochs"}  # the fields caches were keyed on
    torch.manual_seed(0)
    images = torch.rand(64, 3, 8, 8)
    assert torch.equal(augment(images, GREY), images)
    moved = augment(images, COLOUR)
    assert moved.shape == images.shape and not torch.equal(moved, images)
    # a shift or flip moves pixels around but makes none up: each image's pixels stay inside its range
    assert (moved.amax(dim=(1, 2, 3)) <= images.amax(dim=(1, 2, 3))).all()
    assert (moved.amin(dim=(1, 2, 3)) >= images.amin(dim=(1, 2, 3))).all()
    unshifted = augment(images, COLOUR.__class__(**{**COLOUR.__dict__, "shift": 0}))
    flipped = [torch.equal(a, b.flip(2)) or torch.equal(a, b) for a, b in zip(unshifted, images)]
    assert all(flipped) and 0 < sum(not torch.equal(a, b) for a, b in zip(unshifted, images)) < 64
