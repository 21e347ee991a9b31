"""The on-disk cache of decoded datasets (vaegan_runner/data/decoded_cache.py)."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from omegaconf import OmegaConf
from test_data import fake_mnist, write_idx

from vaegan_runner.config.checks import typed
from vaegan_runner.data import cifar, dataset_schema, idx, load_data, shapes
from vaegan_runner.data.idx import FILES

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dataset"
CPU = torch.device("cpu")
SMALL_SHAPES = {"n_train": 200, "n_test": 40}


def load(name: str, **overrides):
    node = OmegaConf.merge(OmegaConf.load(CONFIGS / f"{name}.yaml"), overrides)
    return load_data(typed(dataset_schema(name), node, "dataset"), CPU)


def count_calls(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` so that each call is recorded in the returned list."""
    calls, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def forbid(monkeypatch, module, name: str) -> None:
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} called although the cache holds the data")

    monkeypatch.setattr(module, name, fail)


def same_data(a, b) -> bool:
    return all(
        torch.equal(getattr(a, split).images, getattr(b, split).images)
        and torch.equal(getattr(a, split).labels, getattr(b, split).labels)
        for split in ("train", "test")
    )


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.npz"))


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- hits and misses ------------------------------------------------------------------------


def test_shapes_written_then_read_without_rendering(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    uncached = load("shapes", **SMALL_SHAPES, cache_dir=None)
    first = load("shapes", **SMALL_SHAPES, cache_dir=str(cache))
    [entry] = entries(cache)
    assert entry.name.startswith("shapes-28px-1ch-")
    umask = os.umask(0)
    os.umask(umask)
    assert entry.stat().st_mode & 0o777 == 0o666 & ~umask, "readable like any file the user writes"
    forbid(monkeypatch, shapes, "render_shapes")
    second = load("shapes", **SMALL_SHAPES, cache_dir=str(cache))
    assert same_data(uncached, first) and same_data(uncached, second)
    assert second.train.images.dtype == torch.uint8 and second.train.labels.dtype == torch.int64


def test_mnist_written_then_read_without_decoding(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    cache, files = tmp_path / "cache", dict(root=str(tmp_path), download=False)
    uncached = load("mnist", **files, cache_dir=None)
    assert same_data(uncached, load("mnist", **files, cache_dir=str(cache)))
    forbid(monkeypatch, idx, "read_idx")
    assert same_data(uncached, load("mnist", **files, cache_dir=str(cache)))
    binarized = load("mnist", **files, cache_dir=str(cache), binarize=True)  # applied after the cache
    assert set(binarized.test.images.unique().tolist()) <= {0, 255}


def test_changed_source_file_is_a_miss(tmp_path):
    raw = fake_mnist(tmp_path)
    cache, files = tmp_path / "cache", dict(root=str(tmp_path), download=False)
    before = load("mnist", **files, cache_dir=str(cache))
    path = raw / FILES["test"][0]  # plain file
    write_idx(path, np.full((5, 28, 28), 7), gz=False)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    after = load("mnist", **files, cache_dir=str(cache))
    assert (after.test.images == 7).all() and not torch.equal(before.test.images, after.test.images)
    assert len(entries(cache)) == 2


@pytest.mark.parametrize("change", [{"image_size": 32}, {"seed": 1}, {"channels": 3}, {"n_test": 41}])
def test_key_change_is_a_miss(tmp_path, monkeypatch, change):
    cache = str(tmp_path / "cache")
    load("shapes", **SMALL_SHAPES, cache_dir=cache)
    renders = count_calls(monkeypatch, shapes, "render_shapes")
    changed = load("shapes", **{**SMALL_SHAPES, **change}, cache_dir=cache)
    assert len(renders) == 2 and len(entries(Path(cache))) == 2
    assert same_data(changed, load("shapes", **{**SMALL_SHAPES, **change}, cache_dir=None))


def test_cache_dir_null_disables(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEGAN_CACHE_DIR", str(tmp_path))
    renders = count_calls(monkeypatch, shapes, "render_shapes")
    for _ in range(2):
        load("shapes", **SMALL_SHAPES, cache_dir=None)
    assert len(renders) == 4 and list(tmp_path.iterdir()) == []


def test_default_location_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEGAN_CACHE_DIR", str(tmp_path))
    load("shapes", **SMALL_SHAPES)
    assert len(entries(tmp_path / "datasets")) == 1


# --- damaged entries and unwritable folders -------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_pixel_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # in the middle of train_images
    path.write_bytes(bytes(data))


def foreign_entry(path: Path) -> None:
    """Another key's (valid) entry under this entry's name."""
    other = path.parent / "other"
    load("shapes", **SMALL_SHAPES, seed=5, cache_dir=str(other))
    os.replace(entries(other)[0], path)


@pytest.mark.parametrize("damage", [truncate, flip_a_pixel_byte, foreign_entry, lambda p: p.write_bytes(b"")])
def test_damaged_entry_is_rebuilt(tmp_path, monkeypatch, caplog, damage):
    cache = tmp_path / "cache"
    expected = load("shapes", **SMALL_SHAPES, cache_dir=str(cache))
    [entry] = entries(cache)
    damage(entry)
    renders = count_calls(monkeypatch, shapes, "render_shapes")
    with caplog.at_level(logging.WARNING):
        rebuilt = load("shapes", **SMALL_SHAPES, cache_dir=str(cache))
    assert same_data(expected, rebuilt) and len(renders) == 2
    [message] = warnings_of(caplog)
    assert str(entry) in message and "unusable" in message
    forbid(monkeypatch, shapes, "render_shapes")  # the rewritten entry is whole again
    assert same_data(expected, load("shapes", **SMALL_SHAPES, cache_dir=str(cache)))
    assert entries(cache) == [entry] and not list(cache.glob(".*.tmp"))


def test_unwritable_cache_dir_warns_once_and_loads(tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # mkdir below it fails, for root too
    with caplog.at_level(logging.WARNING):
        data = load("shapes", **SMALL_SHAPES, cache_dir=str(blocker / "cache"))
    assert same_data(data, load("shapes", **SMALL_SHAPES, cache_dir=None))
    [message] = warnings_of(caplog)
    assert "cannot write" in message and "dataset.cache_dir" in message


# --- CIFAR-10 (torchvision's reader replaced by a fake) -------------------------------------


class FakeCIFAR10:
    made = 0

    def __init__(self, root, train, download):
        FakeCIFAR10.made += 1
        n = 6 if train else 3
        self.data = np.random.default_rng(int(train)).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = list(range(n))


def test_cifar_written_then_read_without_decoding(tmp_path, monkeypatch):
    folder = tmp_path / cifar.FOLDER
    folder.mkdir()
    for name in cifar.FILES:
        (folder / name).write_bytes(b"x")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    FakeCIFAR10.made = 0
    args = dict(root=str(tmp_path), download=False, cache_dir=str(tmp_path / "cache"), image_size=16)
    first, second = load("cifar10", **args), load("cifar10", **args)
    assert FakeCIFAR10.made == 2, "one decode (train and test), then the cache"
    assert same_data(first, second) and first.train.images.shape == (6, 3, 16, 16)
