"""CIFAR-10 from a JPEG copy (packed or unpacked), image folders with train/ and test/ splits, and
the copy of the data named with every result. Fake copies are made here; the real one is used
only when VAEGAN_DATA_DIR holds it."""

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from vaegan_runner.config.checks import ConfigError, typed
from vaegan_runner.data import cifar, dataset_schema, load_data
from vaegan_runner.data.split_folders import decode_split_folders

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dataset"
CPU = torch.device("cpu")
CLASSES = ["cat", "dog", "frog"]


def config(name: str, **overrides):
    node = OmegaConf.merge(OmegaConf.load(CONFIGS / f"{name}.yaml"), overrides)
    return typed(dataset_schema(name), node, "dataset")


def jpeg_bytes(seed: int, size: int = 32, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(out, "JPEG", quality=95)
    return out.getvalue()


def make_copy(folder: Path, classes=CLASSES, per_class=None) -> Path:
    """train/<class>/NNNN.jpg and test/<class>/NNNN.jpg with random pixels."""
    per_class = per_class or {"train": 3, "test": 2}
    seed = 0
    for split, n in per_class.items():
        for name in classes:
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (folder / split / name / f"{i:04d}.jpg").write_bytes(jpeg_bytes(seed))
                seed += 1
    return folder


def pack(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(folder / split, arcname=split)
    return archive


def test_folder_and_archive_decode_to_the_same_splits(tmp_path):
    copy = make_copy(tmp_path / "copy")
    unpacked = decode_split_folders(copy, channels=3, expected_size=32)
    packed = decode_split_folders(pack(copy, tmp_path / "copy.tar.gz"), channels=3, expected_size=32)
    assert unpacked.classes == packed.classes == CLASSES
    for a, b in ((unpacked.train, packed.train), (unpacked.test, packed.test)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    images, labels = unpacked.train
    assert images.shape == (9, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    expected = np.asarray(Image.open(copy / "train" / "dog" / "0001.jpg"))
    assert np.array_equal(images[4].permute(1, 2, 0).numpy(), expected)


def test_truncated_archive_names_the_archive(tmp_path):
    archive = pack(make_copy(tmp_path / "copy"), tmp_path / "copy.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ConfigError, match="dataset.root") as err:
        decode_split_folders(archive, channels=3)
    assert str(archive) in str(err.value) and "truncated or damaged" in str(err.value)


def test_a_corrupt_jpeg_among_good_ones_is_named(tmp_path):
    copy = make_copy(tmp_path / "copy")
    bad = copy / "test" / "frog" / "0001.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(ConfigError, match="dataset.root") as err:
        decode_split_folders(copy, channels=3)
    assert str(bad) in str(err.value) and "not a readable image" in str(err.value)
    with pytest.raises(ConfigError) as packed:
        decode_split_folders(pack(copy, tmp_path / "copy.tar.gz"), channels=3)
    assert "test/frog/0001.jpg" in str(packed.value)


def test_a_grey_image_in_a_colour_set_is_named(tmp_path):
    copy = make_copy(tmp_path / "copy")
    grey = copy / "train" / "cat" / "0002.jpg"
    grey.write_bytes(jpeg_bytes(99, mode="L"))
    with pytest.raises(ConfigError, match="dataset.root") as err:
        decode_split_folders(copy, channels=3)
    assert str(grey) in str(err.value) and "is a L image" in str(err.value)


def test_an_image_of_another_size_is_named(tmp_path):
    copy = make_copy(tmp_path / "copy")
    big = copy / "test" / "cat" / "0000.jpg"
    big.write_bytes(jpeg_bytes(7, size=40))
    with pytest.raises(ConfigError, match="40x40 pixels") as err:
        decode_split_folders(copy, channels=3, expected_size=32)
    assert str(big) in str(err.value)


def test_a_class_missing_in_one_split_is_named(tmp_path):
    copy = make_copy(tmp_path / "copy")
    for path in (copy / "test" / "dog").iterdir():
        path.unlink()
    (copy / "test" / "dog").rmdir()
    with pytest.raises(ConfigError, match="only in train/: dog"):
        decode_split_folders(copy, channels=3)


@pytest.fixture
def small_cifar(monkeypatch):
    """CIFAR-10's class names with 2 training and 1 test image per class."""
    monkeypatch.setattr(cifar, "PER_CLASS", {"train": 2, "test": 1})

    def make(root: Path, packed: bool) -> Path:
        copy = make_copy(root / cifar.JPEG_FOLDER, cifar.CLASSES, {"train": 2, "test": 1})
        if packed:
            pack(copy, copy / cifar.JPEG_ARCHIVE)
            for split in ("train", "test"):
                for path in sorted((copy / split).rglob("*"), reverse=True):
                    path.unlink() if path.is_file() else path.rmdir()
                (copy / split).rmdir()
        return copy

    return make


@pytest.mark.parametrize("packed", [True, False])
def test_cifar10_reads_a_jpeg_copy_under_its_root(tmp_path, small_cifar, packed):
    small_cifar(tmp_path / "data", packed)
    cache = tmp_path / "cache"
    cfg = config("cifar10", root=str(tmp_path / "data"), download=False, cache_dir=str(cache))
    data = load_data(cfg, CPU)
    assert (len(data.train), len(data.test), data.num_classes) == (20, 10, 10)
    assert sorted(data.train.labels.tolist()) == [c for c in range(10) for _ in range(2)]
    # the copy lists images class by class; a fixed shuffle makes the first few hold several classes
    assert len(set(data.test.labels[:5].tolist())) > 1 and len(set(data.train.labels[:6].tolist())) > 1
    assert "cifar10 JPEG copy" in data.source and "pixels sha256:" in data.source
    assert len(list(cache.glob("cifar10-jpeg-32px-3ch-*.npz"))) == 1
    again = load_data(cfg, CPU)
    assert torch.equal(again.train.images, data.train.images) and again.source == data.source
    resized = load_data(config("cifar10", root=str(tmp_path / "data"), download=False, image_size=16), CPU)
    assert resized.train.images.shape == (20, 3, 16, 16)


def test_a_bad_copy_writes_nothing_to_the_cache(tmp_path, small_cifar):
    copy = small_cifar(tmp_path / "data", packed=False)
    (copy / "train" / "ship" / "0001.jpg").write_bytes(b"not a jpeg")
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError, match="0001.jpg"):
        load_data(config("cifar10", root=str(tmp_path / "data"), download=False, cache_dir=str(cache)), CPU)
    assert not cache.exists() or not any(cache.iterdir())


def test_an_incomplete_cifar_copy_says_which_classes_are_short(tmp_path, small_cifar):
    copy = small_cifar(tmp_path / "data", packed=False)
    (copy / "train" / "horse" / "0001.jpg").unlink()
    with pytest.raises(ConfigError, match="horse 1") as err:
        load_data(config("cifar10", root=str(tmp_path / "data"), download=False, cache_dir=None), CPU)
    assert "not a whole CIFAR-10 copy" in str(err.value)


def test_source_jpeg_without_a_copy_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="dataset.source") as err:
        load_data(config("cifar10", root=str(tmp_path), source="jpeg", download=False), CPU)
    assert cifar.JPEG_ARCHIVE in str(err.value) and "\n" not in str(err.value)


def test_source_is_checked():
    with pytest.raises(ConfigError, match="dataset.source"):
        config("cifar10", source="png")


def test_missing_cifar_names_both_copies(tmp_path):
    with pytest.raises(ConfigError, match="dataset.root") as err:
        load_data(config("cifar10", root=str(tmp_path), download=False), CPU)
    assert "cifar-10-batches-py" in str(err.value) and cifar.JPEG_FOLDER in str(err.value)


# --- image folders with train/ and test/ -----------------------------------------------------


def test_image_folder_uses_train_and_test_folders_as_splits(tmp_path):
    copy = make_copy(tmp_path / "copy", per_class={"train": 3, "test": 2})
    data = load_data(config("image_folder", path=str(copy), image_size=32, num_workers=0), CPU)
    assert (len(data.train), len(data.test), data.num_classes) == (9, 6, 3)
    images, labels = data.test.take(6)
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2] and labels.tolist() != [0, 0, 1, 1, 2, 2]
    assert torch.equal(load_data(config("image_folder", path=str(copy), num_workers=0), CPU).test.take(6)[1], labels)
    assert images.shape == (6, 3, 32, 32)
    assert "train/ and test/ folders" in data.source


def test_image_folder_splits_need_the_same_classes(tmp_path):
    copy = make_copy(tmp_path / "copy")
    (copy / "test" / "owl").mkdir()
    (copy / "test" / "owl" / "0000.jpg").write_bytes(jpeg_bytes(5))
    with pytest.raises(ConfigError, match="only in test/: owl") as err:
        load_data(config("image_folder", path=str(copy), num_workers=0), CPU)
    assert "dataset.path" in str(err.value)


def test_image_folder_without_splits_still_holds_out_a_share(tmp_path):
    copy = make_copy(tmp_path / "copy")
    data = load_data(config("image_folder", path=str(copy / "train"), val_fraction=0.25, num_workers=0), CPU)
    assert (len(data.train), len(data.test)) == (7, 2)
    assert "held-out share 0.25" in data.source


# --- the real copy --------------------------------------------------------------------------

REAL = Path(os.environ.get("VAEGAN_DATA_DIR", "/nonexistent")) / cifar.JPEG_FOLDER / cifar.JPEG_ARCHIVE


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(not REAL.is_file(), reason="no CIFAR-10 JPEG copy under VAEGAN_DATA_DIR")
def test_the_real_jpeg_copy_is_the_official_split(tmp_path):
    data = load_data(config("cifar10", root=str(REAL.parents[1]), download=False, cache_dir=None), CPU)
    assert (len(data.train), len(data.test)) == (50000, 10000)
    assert torch.bincount(data.train.labels).tolist() == [5000] * 10
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    assert str(REAL.resolve()) in data.source
