"""CIFAR-10 in memory, from torchvision's ``cifar-10-batches-py`` (the original pixels) or from a
JPEG copy in the ``train/<class>/``, ``test/<class>/`` layout (packed ``.tar.gz`` or unpacked).

``dataset.source`` picks the copy: ``batches``, ``jpeg``, or ``auto`` (the batches when they are
under ``dataset.root``, else a JPEG copy found there, else torchvision's download). Both give the
official 50000 / 10000 split with torchvision's label order. A JPEG copy holds re-encoded
pixels: numbers computed on it are close to, not equal to, those on the original files, so the
copy used is recorded with every result (``ImageData.source``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from omegaconf import MISSING

from ..config.checks import ConfigError, folder_or_absent, one_of, require
from .decoded_cache import Split, cached_splits, file_identity
from .idx import missing_data_error, one_line, remove_empty_folders
from .pixels import resize_images
from .sources import DATASETS, ImageData, in_memory_data, seeded_generator
from .split_folders import decode_split_folders, is_split_folder, listing_digest

FOLDER = "cifar-10-batches-py"
FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
SOURCES = ("auto", "batches", "jpeg")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS = {"train": 5000, "test": 1000}
JPEG_FOLDER = "CIFAR-10-jpeg"  # <root>/CIFAR-10-jpeg/ holds the archive or train/ and test/
JPEG_ARCHIVE = "cifar10-jpeg.tar.gz"
JPEG_ORDER_SEED = 0  # the JPEG copy lists images class by class; they are put in this seed's fixed order


@dataclass
class Cifar10Config:
    name: str = MISSING
    root: str = MISSING
    source: str = MISSING  # auto | batches | jpeg
    image_size: int = MISSING
    channels: int = MISSING
    download: bool = MISSING
    binarize: bool = MISSING
    labelled: int | None = MISSING  # semi-supervised: keep the labels of this many training images (labelled.py)
    cache_dir: str | None = MISSING  # decoded-dataset cache (decoded_cache.py); null: off

    def __post_init__(self):
        folder_or_absent(self.cache_dir, "cache_dir")
        one_of(self.name, ["cifar10"], "name")
        one_of(self.source, SOURCES, "source")
        require(self.channels == 3, "channels", f"cifar10 has 3 channels; got {self.channels}")
        require(self.image_size >= 8, "image_size", f"must be >= 8, got {self.image_size}")
        require(not self.binarize, "binarize", "binarisation is for 1-channel data; keep it false for cifar10")


def find_jpeg_copy(root: Path) -> Path | None:
    """The JPEG copy under ``root``: ``CIFAR-10-jpeg/cifar10-jpeg.tar.gz``, an unpacked
    ``CIFAR-10-jpeg/{train,test}/``, or either directly in ``root``; unpacked first."""
    for folder in (root / JPEG_FOLDER, root):
        if is_split_folder(folder):
            return folder
        if (folder / JPEG_ARCHIVE).is_file():
            return folder / JPEG_ARCHIVE
    return None


def check_complete(decoded, where: Path) -> None:
    """A CIFAR-10 copy has its 10 classes with 5000 training and 1000 test images each."""
    if decoded.classes != CLASSES:
        raise ConfigError(
            "dataset.root",
            f"{where} holds the classes {', '.join(decoded.classes)}, not CIFAR-10's {', '.join(CLASSES)}; "
            "for another dataset in this layout use dataset=image_folder dataset.path=<folder>.",
        )
    for split, (_, labels) in (("train", decoded.train), ("test", decoded.test)):
        counts = torch.bincount(labels, minlength=len(CLASSES)).tolist()
        short = [f"{name} {n}" for name, n in zip(CLASSES, counts) if n != PER_CLASS[split]]
        if short:
            raise ConfigError(
                "dataset.root",
                f"{where} is not a whole CIFAR-10 copy: {split}/ should hold {PER_CLASS[split]} images per class, "
                f"but holds {', '.join(short)}. Replace it with a whole copy.",
            )


def load_batches(cfg: Cifar10Config, root: Path) -> tuple[Split, Split]:
    files = [root / FOLDER / name for name in FILES]

    def tensors(split) -> Split:
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()
        return resize_images(images, cfg.image_size), torch.tensor(split.targets, dtype=torch.int64)

    def decode() -> tuple[Split, Split]:
        from torchvision.datasets import CIFAR10

        made = [p for p in (root, root / FOLDER) if not p.exists()]  # by the download, if it fails
        try:
            splits = [CIFAR10(str(root), train=train, download=cfg.download) for train in (True, False)]
        except Exception as err:  # missing, corrupt, or the download failed
            remove_empty_folders(made)
            why = f"the download failed: {one_line(err)}" if cfg.download else "dataset.download is false"
            jpeg = f", or a JPEG copy ({JPEG_FOLDER}/{JPEG_ARCHIVE} or {JPEG_FOLDER}/train and test/)"
            raise missing_data_error("CIFAR-10", root / FOLDER, FILES, f"{FOLDER}/{jpeg}", why) from None
        return cast(tuple[Split, Split], tuple(tensors(split) for split in splits))  # train, test

    # Missing files are fetched (or reported) by a first decode; the cache key needs them on disk.
    decoded = None if all(path.is_file() for path in files) else decode()
    return cached_splits(
        cfg.cache_dir,
        "cifar10",
        cfg.image_size,
        cfg.channels,
        file_identity(files),
        lambda: decode() if decoded is None else decoded,
    )


def load_jpeg_copy(cfg: Cifar10Config, copy: Path) -> tuple[Split, Split]:
    def decode() -> tuple[Split, Split]:
        decoded = decode_split_folders(copy, channels=3, expected_size=32)
        check_complete(decoded, copy)
        # The copy lists each split class by class, where the original batches are shuffled: a
        # fixed permutation makes any first-N subset (an evaluation's max_images, the reconstruction
        # grid) a sample of every class, the same in every run.
        out = []
        for stream, (images, labels) in enumerate((decoded.train, decoded.test)):
            order = torch.randperm(len(labels), generator=seeded_generator(JPEG_ORDER_SEED, stream))
            out.append((resize_images(images[order], cfg.image_size), labels[order]))
        return cast(tuple[Split, Split], tuple(out))  # train, test

    order = f"class-interleaved, seed {JPEG_ORDER_SEED}"
    if copy.is_file():
        identity = {"files": file_identity([copy]), "order": order}
    else:
        identity = {"folder": str(copy.resolve()), "files": listing_digest(copy), "order": order}
    return cached_splits(cfg.cache_dir, "cifar10-jpeg", cfg.image_size, cfg.channels, identity, decode)


@DATASETS.register("cifar10", config=Cifar10Config)
def load_cifar10(cfg: Cifar10Config, device: torch.device) -> ImageData:
    root = Path(cfg.root).expanduser()
    have_batches = all((root / FOLDER / name).is_file() for name in FILES)
    copy = None if cfg.source == "batches" or (cfg.source == "auto" and have_batches) else find_jpeg_copy(root)
    if cfg.source == "jpeg" and copy is None:
        raise ConfigError(
            "dataset.source",
            f"jpeg: no CIFAR-10 JPEG copy under {root.resolve()} (looked for {JPEG_FOLDER}/{JPEG_ARCHIVE}, "
            f"{JPEG_FOLDER}/train/ and test/, and the same directly in the root). Point dataset.root at the folder "
            f"holding {JPEG_FOLDER}/, or use dataset.source=auto to read or download torchvision's {FOLDER}/.",
        )
    if copy is None:
        train, test = load_batches(cfg, root)
        described = f"cifar10 original pixels ({(root / FOLDER).resolve()})"
    else:
        train, test = load_jpeg_copy(cfg, copy)
        described = f"cifar10 JPEG copy ({copy.resolve()})"
    return in_memory_data("cifar10", train, test, num_classes=10, device=device, origin=described)
