"""MNIST and Fashion-MNIST: read the IDX files directly, download with torchvision if missing."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING

from ..config.checks import ConfigError, folder_or_absent, one_of, require
from .decoded_cache import cached_splits, file_identity
from .pixels import resize_images
from .sources import DATASETS, ImageData, in_memory_data

FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # <root>/<folder>/raw, as torchvision
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class MnistConfig:
    name: str = MISSING
    root: str = MISSING
    image_size: int = MISSING
    channels: int = MISSING
    download: bool = MISSING
    binarize: bool = MISSING
    labelled: int | None = MISSING  # semi-supervised: keep the labels of this many training images (labelled.py)
    cache_dir: str | None = MISSING  # decoded-dataset cache (decoded_cache.py); null: off

    def __post_init__(self):
        folder_or_absent(self.cache_dir, "cache_dir")
        one_of(self.name, FOLDERS, "name")
        require(self.channels == 1, "channels", f"{self.name} has 1 channel; got {self.channels}")
        require(self.image_size >= 8, "image_size", f"must be >= 8, got {self.image_size}")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array in an IDX file (``.gz`` or plain): magic 0x0000080N, N big-endian dims, data."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as err:
        raise ConfigError("dataset.root", f"cannot read {path} ({err}); delete it to download it again") from None
    header = 4 + 4 * ndim  # 16 bytes for images, 8 for labels
    if len(data) < header or int.from_bytes(data[:4], "big") != 0x800 + ndim:
        raise ConfigError(
            "dataset.root", f"{path} is not a {ndim}-d uint8 IDX file (bad header); delete it to download it again"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise ConfigError(
            "dataset.root",
            f"{path} is truncated: its header says {shape} ({size} bytes) "
            f"but it holds {len(data) - header}; delete it to download it again",
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def find(raw: Path, name: str) -> Path | None:
    """The plain or gzipped file of that name, plain first."""
    for path in (raw / name, raw / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def missing_data_error(what: str, folder: Path, files: list[str], holds: str, why: str, hint: str = "") -> ConfigError:
    """The one-paragraph error for a dataset that is not on disk and could not be downloaded."""
    return ConfigError(
        "dataset.root",
        (
            f"{what} not found: looked in {folder.resolve()} for {', '.join(files)}, and {why}. "
            f"{hint}Point dataset.root or the VAEGAN_DATA_DIR environment variable at a folder that holds {holds}, "
            "allow network access so that torchvision can download it (dataset.download=true), "
            "or use dataset=shapes, which needs no download."
        ),
    )


def one_level_too_deep(folder: Path, files: list[str]) -> str:
    """When the root named was the dataset's own folder or its ``raw/`` (``<root>/MNIST`` for
    ``<root>``), say which root holds the files: torchvision's layout is ``<root>/MNIST/raw``."""
    named = folder.parent.parent  # folder is <named root>/<dataset>/raw
    for raw in (named / "raw", named):
        if all(find(raw, name) for name in files):
            return f"The files are in {raw.resolve()}: set the root to {raw.resolve().parent.parent}. "
    return ""


def one_line(err: Exception) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def remove_empty_folders(made: list[Path]) -> None:
    """Leave no empty folders behind a failed download: ``made`` (outermost first) are the
    folders that did not exist before it; each is removed, innermost first, while empty."""
    for path in reversed(made):
        if not path.is_dir():  # the download stopped before making it
            continue
        try:
            path.rmdir()
        except OSError:  # not empty: a file did arrive
            break


@DATASETS.register("fashion_mnist", config=MnistConfig)
@DATASETS.register("mnist", config=MnistConfig)  # applied first: mnist is listed first
def load_mnist_family(cfg: MnistConfig, device: torch.device) -> ImageData:
    root, folder = Path(cfg.root).expanduser(), FOLDERS[cfg.name]
    raw = root / folder / "raw"
    names = [name for split in FILES.values() for name in split]
    if any(find(raw, name) is None for name in names):
        why = "dataset.download is false"
        if cfg.download:
            from torchvision import datasets

            made = [p for p in (root, root / folder, raw) if not p.exists()]  # by the download, if it fails
            try:
                getattr(datasets, folder)(str(root), download=True)
                why = "torchvision's download did not create them"
            except Exception as err:  # network, disk or checksum: reported in the same message
                why = f"the download failed: {one_line(err)}"
            remove_empty_folders(made)
        if any(find(raw, name) is None for name in names):
            found = one_level_too_deep(raw, names)
            raise missing_data_error(folder, raw, [f"{n}[.gz]" for n in names], f"{folder}/raw/", why, found)

    def present(name: str) -> Path:
        path = find(raw, name)
        assert path is not None  # every file was found above (or downloaded, or refused)
        return path

    def split(which: str) -> tuple[torch.Tensor, torch.Tensor]:
        image_file, label_file = FILES[which]
        images = torch.from_numpy(read_idx(present(image_file), 3).copy()).unsqueeze(1)
        labels = torch.from_numpy(read_idx(present(label_file), 1).astype(np.int64))
        if len(images) != len(labels):
            raise ConfigError("dataset.root", f"{raw}: {len(images)} {which} images, {len(labels)} labels")
        return resize_images(images, cfg.image_size), labels

    train, test = cached_splits(
        cfg.cache_dir,
        cfg.name,
        cfg.image_size,
        cfg.channels,
        file_identity(present(name) for name in names),
        lambda: (split("train"), split("test")),
    )
    return in_memory_data(
        cfg.name,
        train,
        test,
        num_classes=10,
        device=device,
        binarize_seed=0 if cfg.binarize else None,
        origin=f"{cfg.name} IDX files ({raw.resolve()})",
    )
