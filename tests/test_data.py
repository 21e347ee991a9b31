import gzip
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from vaegan_runner.config.checks import ConfigError, keys_of, typed
from vaegan_runner.data import DATASET_NAMES, dataset_schema, load_data, to_pixels, to_unit
from vaegan_runner.data.idx import FILES, read_idx
from vaegan_runner.data.sources import TensorSource

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dataset"
CPU = torch.device("cpu")


def config(name: str, **overrides):
    node = OmegaConf.merge(OmegaConf.load(CONFIGS / f"{name}.yaml"), overrides)
    return typed(dataset_schema(name), node, "dataset")


def shapes(**overrides):
    return load_data(config("shapes", **{"n_train": 300, "n_test": 60, **overrides}), CPU)


def epoch_labels(source, batch_size, **kwargs):
    return torch.cat([labels for _, labels in source.batches(batch_size, **kwargs)]).tolist()


# --- shapes ---------------------------------------------------------------------------------


def test_shapes_deterministic_per_seed():
    a, b, c = shapes(seed=1), shapes(seed=1), shapes(seed=2)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.train.labels, b.train.labels)
    assert torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.train.images, c.train.images)


def test_shapes_labels_and_splits():
    data = shapes()
    assert data.num_classes == 3 and len(data.train) == 300 and len(data.test) == 60
    assert set(data.train.labels.tolist()) == {0, 1, 2}
    assert not torch.equal(data.train.images[:60], data.test.images)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32, 64])
def test_shapes_tensor_shapes(channels, size):
    data = shapes(channels=channels, image_size=size)
    assert (data.channels, data.image_size) == (channels, size)
    images, labels = next(data.train.batches(16, epoch=0, seed=0))
    assert images.shape == (16, channels, size, size) and images.dtype == torch.uint8
    assert labels.shape == (16,) and labels.dtype == torch.int64
    assert data.test.images.shape == (60, channels, size, size)
    # every shape is visible, and drawn inside the image with a black border left around it
    assert (images.flatten(1).amax(1) > 100).all()
    assert images[..., 0, :].max() == 0 and images[..., -1].max() == 0


def test_shapes_small_images_and_colours():
    grey = shapes(image_size=8)
    assert grey.train.images.shape[-1] == 8
    colour = shapes(channels=3).train.images.float()
    assert (colour[:, 0] != colour[:, 1]).any(), "3-channel shapes should not all be grey"


# --- batch order ----------------------------------------------------------------------------


def indexed_source(n=103):
    """Labels are the stored indices, so the label order is the batch order."""
    return TensorSource(torch.zeros(n, 1, 4, 4, dtype=torch.uint8), torch.arange(n))


def test_batch_order_pure_function_of_seed_and_epoch():
    source = indexed_source()
    first = epoch_labels(source, 10, epoch=3, seed=7)
    assert first == epoch_labels(source, 10, epoch=3, seed=7)
    assert first != epoch_labels(source, 10, epoch=4, seed=7)
    assert first != epoch_labels(source, 10, epoch=3, seed=8)
    assert len(first) == 100 and len(set(first)) == 100  # drop_last: 10 full batches, no repeats
    every = epoch_labels(source, 10, epoch=3, seed=7, drop_last=False)
    assert sorted(every) == list(range(103)) and every[:100] == first
    assert source.num_batches(10) == 10 and source.num_batches(10, drop_last=False) == 11


def test_batches_resume_from_start_is_tail():
    source = indexed_source()
    full = list(source.batches(8, epoch=2, seed=5))
    tail = list(source.batches(8, epoch=2, seed=5, start=4))
    assert len(tail) == len(full) - 4
    for (_, expected), (_, got) in zip(full[4:], tail):
        assert torch.equal(expected, got)


def test_unshuffled_order_and_take():
    source = indexed_source()
    assert epoch_labels(source, 10, epoch=0, seed=0, shuffle=False, drop_last=False) == list(range(103))
    images, labels = source.take(5)
    assert labels.tolist() == [0, 1, 2, 3, 4] and images.shape == (5, 1, 4, 4)
    data = shapes()
    assert torch.equal(data.train.take(8)[0], data.train.take(8)[0])
    assert torch.equal(data.train.take(8)[0], data.train.images[:8])


# --- pixels and binarisation ----------------------------------------------------------------


def test_pixel_ranges():
    images = torch.tensor([0, 128, 255], dtype=torch.uint8)
    unit, symmetric = to_pixels(images, "unit"), to_pixels(images, "symmetric")
    assert unit.dtype == torch.float32 and unit.tolist() == pytest.approx([0, 128 / 255, 1], abs=1e-6)
    assert symmetric.tolist() == pytest.approx([-1, 2 * 128 / 255 - 1, 1], abs=1e-6)
    assert torch.allclose(to_unit(symmetric, "symmetric"), unit)
    assert to_unit(torch.tensor([-3.0, 0.5, 2.0]), "unit").tolist() == [0, 0.5, 1]
    assert to_unit(torch.tensor([-3.0, 0.0, 2.0]), "symmetric").tolist() == [0, 0.5, 1]
    with pytest.raises(ValueError):
        to_pixels(images, "bytes")


def test_binarize():
    a, b = shapes(binarize=True), shapes(binarize=True)
    assert torch.equal(a.test.images, b.test.images)
    assert set(a.test.images.unique().tolist()) <= {0, 255}
    torch.manual_seed(0)
    first, _ = next(a.train.batches(32, epoch=0, seed=0))
    second, _ = next(a.train.batches(32, epoch=0, seed=0))
    torch.manual_seed(0)
    replay, _ = next(a.train.batches(32, epoch=0, seed=0))
    assert set(first.unique().tolist()) == {0, 255}
    assert not torch.equal(first, second), "each pass draws fresh samples"
    assert torch.equal(first, replay), "the draws follow torch's global RNG"


# --- configs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_yaml_composes_into_dataclass(name, monkeypatch, tmp_path):
    monkeypatch.setenv("VAEGAN_DATA_DIR", str(tmp_path))
    node = OmegaConf.load(CONFIGS / f"{name}.yaml")
    assert set(node.keys()) == set(keys_of(dataset_schema(name)))
    if name == "image_folder":
        with pytest.raises(ConfigError, match="dataset.path"):
            typed(dataset_schema(name), node, "dataset")
        node.path = str(tmp_path)
    cfg = typed(dataset_schema(name), node, "dataset")
    assert cfg.name == name
    if hasattr(cfg, "root"):
        assert cfg.root == str(tmp_path)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ConfigError, match="dataset") as err:
        dataset_schema("nope")
    assert all(name in str(err.value) for name in DATASET_NAMES)


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("mnist", "channels", 3),
        ("fashion_mnist", "channels", 3),
        ("cifar10", "channels", 1),
        ("cifar10", "binarize", True),
        ("shapes", "channels", 2),
        ("shapes", "image_size", 4),
        ("shapes", "n_train", 0),
        ("image_folder", "val_fraction", 1.0),
        ("image_folder", "num_workers", -1),
    ],
)
def test_invalid_values_name_their_key(name, key, value):
    extra = {"path": "x"} if name == "image_folder" else {}
    with pytest.raises(ConfigError, match=f"dataset.{key}") as err:
        config(name, **extra, **{key: value})
    if name == "mnist":
        assert "1 channel" in str(err.value)


def test_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="dataset.colour"):
        config("shapes", colour=3)


# --- MNIST-family files ---------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)


def fake_mnist(root: Path, folder="MNIST", n_train=12, n_test=5):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for gz, (which, n) in zip([True, False], [("train", n_train), ("test", n_test)]):
        image_file, label_file = FILES[which]
        write_idx(raw / (image_file + ".gz" * gz), rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(raw / (label_file + ".gz" * gz), rng.integers(0, 10, n), gz)
    return raw


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_reads_idx_files_gz_or_plain(tmp_path, name, folder):
    fake_mnist(tmp_path, folder)
    data = load_data(config(name, root=str(tmp_path), download=False), CPU)
    assert (len(data.train), len(data.test), data.num_classes) == (12, 5, 10)
    assert data.train.images.shape == (12, 1, 28, 28) and data.train.images.dtype == torch.uint8
    resized = load_data(config(name, root=str(tmp_path), download=False, image_size=32), CPU)
    assert resized.train.images.shape == (12, 1, 32, 32) and resized.image_size == 32


def test_mnist_binarized_test_split_is_fixed(tmp_path):
    fake_mnist(tmp_path)
    cfg = config("mnist", root=str(tmp_path), download=False, binarize=True)
    a, b = load_data(cfg, CPU), load_data(cfg, CPU)
    assert torch.equal(a.test.images, b.test.images)
    assert set(a.test.images.unique().tolist()) <= {0, 255}


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    raw = fake_mnist(tmp_path)
    path = raw / FILES["test"][0]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(path, 3)
    with pytest.raises(ConfigError, match="dataset.root"):
        read_idx(raw / (FILES["train"][1] + ".gz"), 3)  # a label file is not 3-d


def test_missing_mnist_without_download(tmp_path):
    with pytest.raises(ConfigError, match="dataset.root") as err:
        load_data(config("mnist", root=str(tmp_path), download=False), CPU)
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert all(name in message for split in FILES.values() for name in split)
    assert "VAEGAN_DATA_DIR" in message and "dataset=shapes" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("named", ["MNIST", "MNIST/raw"])
def test_a_root_one_level_too_deep_is_named(tmp_path, named):
    """VAEGAN_DATA_DIR=<data>/MNIST: the files are found one level up and the right root is said."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in (n for split in FILES.values() for n in split):
        (raw / f"{name}.gz").write_bytes(b"")
    with pytest.raises(ConfigError, match="dataset.root") as err:
        load_data(config("mnist", root=str(tmp_path / named), download=False), CPU)
    assert f"The files are in {raw.resolve()}: set the root to {tmp_path.resolve()}." in str(err.value)
    with pytest.raises(ConfigError) as elsewhere:
        load_data(config("mnist", root=str(tmp_path / "other"), download=False), CPU)
    assert "The files are in" not in str(elsewhere.value)


def test_missing_cifar_without_download(tmp_path):
    with pytest.raises(ConfigError, match="dataset.root") as err:
        load_data(config("cifar10", root=str(tmp_path), download=False), CPU)
    assert "cifar-10-batches-py" in str(err.value) and "data_batch_1" in str(err.value)


# --- image folders --------------------------------------------------------------------------


def image_tree(root: Path) -> Path:
    """Two class folders of small PNGs of several sizes, a corrupt .png and a text file."""
    for label, name in enumerate(["cats", "dogs"]):
        (root / name).mkdir(parents=True)
        for i in range(6):
            size = (20 + 4 * i, 16) if i % 2 else (16, 24)
            Image.new("RGB", size, (40 * i, 100 * label, 200)).save(root / name / f"{i}.png")
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG not really an image" * 10)
    (root / "cats" / "notes.txt").write_text("not an image")
    return root


def folder(path, **overrides):
    overrides = {"path": str(path), "num_workers": 0, "image_size": 12, **overrides}
    return load_data(config("image_folder", **overrides), CPU)


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_loads_and_excludes_corrupt(tmp_path, caplog, channels):
    root = image_tree(tmp_path / "images")
    with caplog.at_level(logging.WARNING):
        data = folder(root, channels=channels, val_fraction=0.25)
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "left out 1 " in warnings[0] and "broken.png" in warnings[0]
    assert (len(data.train), len(data.test), data.num_classes, data.channels) == (9, 3, 2, channels)
    images, labels = next(data.train.batches(4, epoch=0, seed=0))
    assert images.shape == (4, channels, 12, 12) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    every = epoch_labels(data.train, 3, epoch=0, seed=0) + epoch_labels(data.test, 3, epoch=0, seed=0)
    assert sorted(every) == [0] * 6 + [1] * 6


def test_image_folder_resize_and_center_crop(tmp_path):
    strip = np.zeros((20, 60, 3), np.uint8)
    strip[:, :20, 1] = strip[:, 40:, 1] = 255  # green | red | green
    strip[:, 20:40, 0] = 255
    for i in range(2):
        Image.fromarray(strip).save(tmp_path / f"{i}.png")
    data = folder(tmp_path, image_size=16)
    assert data.num_classes is None
    images, labels = data.train.take(1)
    assert images.shape == (1, 3, 16, 16) and labels.tolist() == [0]
    red, green = images[0, 0].float(), images[0, 1].float()
    assert red[:, 2:-2].min() > 200 and green[:, 2:-2].max() < 50  # only the red middle survives the crop


def same_size_folder(root: Path, size: int) -> Path:
    root.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (size, size), (80 * i, 40, 200)).save(root / f"{i}.png")
    return root


def resize_messages(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if "dataset.image_size=" in r.getMessage()]


def test_image_folder_says_when_image_size_enlarges_images_that_share_a_size(tmp_path, caplog):
    root = same_size_folder(tmp_path / "small", 10)
    with caplog.at_level(logging.INFO):
        data = folder(root, image_size=16)
    ((level, message),) = resize_messages(caplog)
    assert level == logging.WARNING and f"every image under {root} is 10x10" in message
    assert "dataset.image_size=16 enlarges them" in message and "dataset.image_size=10 keeps their own size" in message
    assert data.train.take(1)[0].shape[-1] == 16  # the setting still holds: said, not overridden


def test_image_folder_says_nothing_when_the_images_fit_or_differ(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        folder(same_size_folder(tmp_path / "exact", 12), image_size=12)
        folder(image_tree(tmp_path / "mixed"), image_size=12)  # several sizes: resized as documented
    assert resize_messages(caplog) == []
    with caplog.at_level(logging.INFO):
        folder(same_size_folder(tmp_path / "large", 20), image_size=12)
    ((level, message),) = resize_messages(caplog)
    assert level == logging.INFO and "resizes the shorter side to 12" in message


def test_image_folder_batches_follow_seed_and_epoch(tmp_path):
    root = image_tree(tmp_path)
    data = folder(root, val_fraction=0.25, num_workers=2)
    full = list(data.train.batches(2, epoch=1, seed=3))
    tail = list(data.train.batches(2, epoch=1, seed=3, start=2))
    assert [labels.tolist() for _, labels in full[2:]] == [labels.tolist() for _, labels in tail]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(full[2:], tail))
    again = [images for images, _ in data.train.batches(2, epoch=1, seed=3)]
    assert all(torch.equal(a, b) for a, (b, _) in zip(again, full))
    in_process = folder(root, val_fraction=0.25, num_workers=0)
    assert all(torch.equal(a, b) for a, (b, _) in zip(again, in_process.train.batches(2, epoch=1, seed=3)))


def test_image_folder_file_broken_after_listing(tmp_path, caplog):
    root = image_tree(tmp_path)
    data = folder(root)
    broken = data.train.dataset.files[0]
    broken.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        for epoch in range(2):
            batches = list(data.train.batches(3, epoch=epoch, seed=0, drop_last=False))
            assert sum(len(labels) for _, labels in batches) == len(data.train)
    assert sum(str(broken) in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("make", ["missing", "empty", "no_images"])
def test_image_folder_without_images(tmp_path, make):
    path = tmp_path / "images"
    if make != "missing":
        path.mkdir()
    if make == "no_images":
        (path / "a.txt").write_text("text")
    with pytest.raises(ConfigError, match="dataset.path") as err:
        folder(path)
    assert str(path) in str(err.value) and ".png" in str(err.value)


# --- real data ------------------------------------------------------------------------------


def listing(root: Path):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_mnist_family(real_data_root, name):
    before = listing(real_data_root)
    data = load_data(config(name, root=str(real_data_root), download=False), CPU)
    assert (len(data.train), len(data.test)) == (60000, 10000)
    assert data.train.images.shape == (60000, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert data.test.labels.dtype == torch.int64
    assert set(data.train.labels.unique().tolist()) == set(range(10))
    assert set(data.test.labels.unique().tolist()) == set(range(10))
    assert 0.1 < data.train.images.float().mean() / 255 < 0.4
    assert listing(real_data_root) == before, "nothing may be written into the data folder"
