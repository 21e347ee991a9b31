"""Images laid out as ``train/<class>/<file>`` and ``test/<class>/<file>``, in a folder or packed
in a ``.tar.gz``, decoded whole into uint8 tensors.

This is the layout of the CIFAR-10 JPEG copies (and of most downloaded image datasets). Every
file is decoded and checked: a file that is not a readable image, an image of another size or
channel count than the set's, a class folder that one split has and the other lacks, or an
archive that ends early stops the load with a ``ConfigError`` naming the file. Nothing is
returned in part, so nothing half-decoded reaches the decoded-dataset cache.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config.checks import ConfigError
from .idx import one_line

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class DecodedSplits:
    """Both splits as (uint8 [N, C, H, W], int64 [N]) pairs, and the class names (label order)."""

    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    classes: list[str]


def is_split_folder(folder: Path) -> bool:
    return all((folder / split).is_dir() for split in SPLITS)


def listing_digest(folder: Path) -> str:
    """A digest of every file's relative path, size and mtime under the two splits (or the
    whole folder when it has no splits): the identity of an unpacked copy (a changed, added or
    removed file changes it)."""
    digest = hashlib.sha256()
    for root in [folder / split for split in SPLITS] if is_split_folder(folder) else [folder]:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _member_key(name: str) -> tuple[str, str, str] | None:
    """(split, class, file) of an archive or folder entry ``[prefix/]<split>/<class>/<file>``."""
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if len(parts) < 3 or parts[-3] not in SPLITS or parts[-1].startswith("."):
        return None
    if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
        return None
    return parts[-3], parts[-2], parts[-1]


def _folder_files(folder: Path) -> Iterator[tuple[tuple[str, str, str], str, bytes]]:
    for split in SPLITS:
        for path in sorted((folder / split).glob("*/*")):
            key = _member_key(str(path.relative_to(folder)))
            if key is not None and path.is_file():
                yield key, str(path), path.read_bytes()


def _archive_files(archive: Path) -> Iterator[tuple[tuple[str, str, str], str, bytes]]:
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                key = _member_key(member.name)
                if key is None or not member.isfile():
                    continue
                blob = tar.extractfile(member)
                assert blob is not None  # a regular file (isfile above) always has its data
                yield key, f"{archive}:{member.name}", blob.read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:  # truncated gzip or tar, unreadable file
        raise ConfigError(
            "dataset.root",
            f"cannot read the archive {archive} ({one_line(err)}): it is truncated or damaged. "
            "Replace it with a whole copy, or delete it so that the dataset is found or downloaded elsewhere.",
        ) from None


def decode_split_folders(source: Path, channels: int, expected_size: int | None = None) -> DecodedSplits:
    """Decode every image of ``source`` (a folder holding train/ and test/, or a .tar.gz of one).

    Labels are the class folders in sorted order. Each image must decode, have ``channels``
    channels (a greyscale file in a colour set is refused, not converted) and, if
    ``expected_size`` is given, be that many pixels square; all images share one size.
    """
    from PIL import Image, UnidentifiedImageError

    files = _archive_files(source) if source.is_file() else _folder_files(source)
    mode = {1: "L", 3: "RGB"}[channels]
    found: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = {split: {} for split in SPLITS}
    shape = None
    for (split, label, name), where, blob in files:
        try:
            with Image.open(io.BytesIO(blob)) as image:
                image.load()
                pixels = np.asarray(image)
                got = image.mode
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ConfigError(
                "dataset.root",
                f"{where} is not a readable image ({one_line(err)}): the copy is damaged. "
                "Replace that file (or the whole copy) with a good one.",
            ) from None
        if got != mode:
            raise ConfigError(
                "dataset.root",
                f"{where} is a {got} image in a set of {channels}-channel ({mode}) images: every image of this "
                "dataset must have the same channels. Replace the file with the original image.",
            )
        size = pixels.shape[:2]
        if shape is None:
            shape = size
        if size != shape or (expected_size is not None and size != (expected_size, expected_size)):
            want = (expected_size, expected_size) if expected_size is not None else shape
            raise ConfigError(
                "dataset.root",
                f"{where} is {size[1]}x{size[0]} pixels where the set's images are {want[1]}x{want[0]}: "
                "replace it with the original image.",
            )
        found[split].setdefault(label, []).append((name, pixels))
    for split in SPLITS:
        if not found[split]:
            raise ConfigError(
                "dataset.root",
                f"{source} holds no images under {split}/<class>/ (looked for {', '.join(IMAGE_SUFFIXES)} files): "
                "a copy in this layout needs train/<class>/<image> and test/<class>/<image>.",
            )
    train_classes, test_classes = sorted(found["train"]), sorted(found["test"])
    if train_classes != test_classes:
        only = {
            split: sorted(set(mine) - set(other))
            for split, mine, other in (("train", train_classes, test_classes), ("test", test_classes, train_classes))
        }
        said = "; ".join(f"only in {split}/: {', '.join(names)}" for split, names in only.items() if names)
        raise ConfigError(
            "dataset.root",
            f"the class folders of {source} differ between its splits ({said}): every class needs a folder in "
            "train/ and in test/, or the labels of the two splits would not mean the same thing.",
        )
    index = {name: i for i, name in enumerate(train_classes)}

    def stack(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for label in train_classes:
            for _, pixels in sorted(found[split][label], key=lambda item: item[0]):
                images.append(pixels)
                labels.append(index[label])
        array = np.stack(images)
        array = array[:, None] if array.ndim == 3 else array.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(array)), torch.tensor(labels, dtype=torch.int64)

    return DecodedSplits(stack("train"), stack("test"), train_classes)
