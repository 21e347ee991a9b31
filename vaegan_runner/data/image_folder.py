"""A folder of image files (optionally one sub-folder per class), decoded by DataLoader workers.

PIL and torchvision are imported where they are used: torchvision alone costs ~1.5 s of every
run's startup, and only image-folder runs need it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import MISSING
from torch.utils.data import Dataset

from ..config.checks import ConfigError, non_negative, one_of, require
from .idx import one_line
from .sources import DATASETS, ImageData, LoaderSource, seeded_generator
from .split_folders import is_split_folder, listing_digest

log = logging.getLogger(__name__)
SPLIT_STREAM = 0  # (seed, 0): the permutation that picks the held-out images
TRAIN_ORDER_STREAM, TEST_ORDER_STREAM = 1, 2  # (seed, 1), (seed, 2): the order of train/ and test/


@dataclass
class ImageFolderConfig:
    name: str = MISSING
    path: str = MISSING
    image_size: int = MISSING
    channels: int = MISSING
    val_fraction: float = MISSING
    seed: int = MISSING
    num_workers: int = MISSING
    extensions: list[str] = MISSING

    def __post_init__(self):
        one_of(self.name, ["image_folder"], "name")
        require(self.image_size >= 8, "image_size", f"must be >= 8, got {self.image_size}")
        one_of(self.channels, [1, 3], "channels")
        require(0 < self.val_fraction < 1, "val_fraction", f"must be in (0, 1), got {self.val_fraction}")
        non_negative(self.num_workers, "num_workers")
        require(len(self.extensions) > 0, "extensions", "must list at least one extension, e.g. [.png]")


def list_images(folder: Path, extensions: list[str]) -> tuple[list[Path], list[int], list[str]]:
    """Image files under folder (sorted, hidden paths skipped), their labels, and the class names.

    Classes are the top-level sub-folders; with none, every image has label 0 and there are no
    class names. Images lying next to class folders belong to no class and are left out.
    """
    suffixes = {"." + ext.lstrip(".").lower() for ext in extensions}
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in suffixes
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    classes = sorted({path.relative_to(folder).parts[0] for path in files if path.parent != folder})
    if not classes:
        return files, [0] * len(files), []
    loose = [path for path in files if path.parent == folder]
    if loose:
        log.warning(
            "%d images directly in %s are left out: they sit next to the class folders %s",
            len(loose),
            folder,
            ", ".join(classes),
        )
    files = [path for path in files if path.parent != folder]
    index = {name: i for i, name in enumerate(classes)}
    return files, [index[path.relative_to(folder).parts[0]] for path in files], classes


def readable_size(path: Path) -> tuple[int, int] | None:
    """The (width, height) of an image PIL can read, from a cheap check (header and structure,
    no full decode); None for a file it cannot."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()
        return size
    except Exception:  # PIL raises many kinds for corrupt files
        return None


def say_how_images_are_resized(folder: Path, sizes: set[tuple[int, int]], image_size: int) -> None:
    """Say what ``dataset.image_size`` does to images that all share one size: a warning when it
    enlarges them (blurrier images, more compute, for nothing the files hold), a line when it
    shrinks or crops them. Mixed sizes are resized as documented, without a word."""
    if len(sizes) != 1:
        return
    ((width, height),) = sizes
    if (width, height) == (image_size, image_size):
        return
    shorter = min(width, height)
    what = f"every image under {folder} is {width}x{height}"
    if shorter < image_size:
        log.warning(
            "%s: dataset.image_size=%d enlarges them (shorter side %d -> %d, then a %dx%d centre crop); "
            "dataset.image_size=%d keeps their own size",
            what,
            image_size,
            shorter,
            image_size,
            image_size,
            image_size,
            shorter,
        )
    else:
        log.info(
            "%s: dataset.image_size=%d resizes the shorter side to %d and crops the centre %dx%d",
            what,
            image_size,
            image_size,
            image_size,
            image_size,
        )


class FolderImages(Dataset):
    """Decodes files to uint8 [C, S, S]: shorter side resized to S, then center-cropped.

    A file that fails to decode is replaced by the next one that works (warned once per file).
    """

    def __init__(self, files: list[Path], labels: list[int], image_size: int, channels: int):
        from torchvision import transforms

        self.files, self.labels = files, labels
        self.mode = "L" if channels == 1 else "RGB"
        self.transform = transforms.Compose(
            [
                transforms.Resize(image_size),
                transforms.CenterCrop(image_size),
                transforms.PILToTensor(),
            ]
        )
        self.warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        for j in range(len(self)):
            k = (i + j) % len(self)
            try:
                with Image.open(self.files[k]) as image:
                    return self.transform(image.convert(self.mode)), self.labels[k]
            except Exception as err:  # a corrupt file must not stop training
                if k not in self.warned:
                    self.warned.add(k)
                    log.warning("cannot decode %s (%s); using another image in its place", self.files[k], one_line(err))
        raise RuntimeError(f"none of the {len(self)} images could be decoded")


def readable_files(
    folder: Path, cfg: ImageFolderConfig
) -> tuple[list[Path], list[int], list[str], set[tuple[int, int]]]:
    """The readable images under ``folder`` with their labels, the class names and the images'
    sizes; unreadable files are left out with a warning, a folder with none readable is a
    ConfigError."""
    looked_for = f"images with extensions {', '.join(cfg.extensions)}"
    files, labels, classes = list_images(folder, cfg.extensions)
    found = [readable_size(path) for path in files]
    ok = [size is not None for size in found]
    bad = [path for path, good in zip(files, ok) if not good]
    named = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
    require(
        len(bad) < len(files) or not files,
        "dataset.path",
        f"none of the {len(files)} image files under {folder.resolve()} can be read ({named}): they are "
        "corrupt, truncated or not images; replace them, or point dataset.path at a folder of readable "
        f"{looked_for}",
    )
    if bad:
        log.warning("left out %d unreadable image files under %s: %s", len(bad), folder, named)
        files = [path for path, good in zip(files, ok) if good]
        labels = [label for label, good in zip(labels, ok) if good]
    require(len(files) > 0, "dataset.path", f"found no readable {looked_for} under {folder.resolve()}")
    return files, labels, classes, {size for size in found if size is not None}


def check_same_classes(folder: Path, train_classes: list[str], test_classes: list[str]) -> None:
    """train/ and test/ must name the same classes, or label i would mean two things."""
    if train_classes == test_classes:
        return
    only = [
        f"only in {split}/: {', '.join(sorted(set(mine) - set(other)))}"
        for split, mine, other in (("train", train_classes, test_classes), ("test", test_classes, train_classes))
        if set(mine) - set(other)
    ]
    raise ConfigError(
        "dataset.path",
        f"the class folders of {folder.resolve()}/train and /test differ ({'; '.join(only) or 'none or all'}): "
        "every class needs a folder in both splits (or neither split has class folders), or the labels of the "
        "two splits would not mean the same thing.",
    )


def in_seeded_order(files: list[Path], labels: list[int], seed: int, stream: int) -> tuple[list[Path], list[int]]:
    order = torch.randperm(len(files), generator=seeded_generator(seed, stream)).tolist()
    return [files[i] for i in order], [labels[i] for i in order]


@DATASETS.register("image_folder", config=ImageFolderConfig)
def load_image_folder(cfg: ImageFolderConfig, device: torch.device) -> ImageData:
    """``<path>/train/`` and ``<path>/test/`` are the splits when both exist (class sub-folders
    below each); otherwise every image under ``<path>`` and a seeded ``val_fraction`` held out."""
    folder = Path(cfg.path).expanduser()
    looked_for = f"images with extensions {', '.join(cfg.extensions)}"
    require(folder.is_dir(), "dataset.path", f"{folder.resolve()} is not a folder (looked for {looked_for})")

    def source(files: list[Path], labels: list[int]) -> LoaderSource:
        return LoaderSource(FolderImages(files, labels, cfg.image_size, cfg.channels), device, cfg.num_workers)

    if is_split_folder(folder):
        train_files, train_labels, classes, sizes = readable_files(folder / "train", cfg)
        test_files, test_labels, test_classes, test_sizes = readable_files(folder / "test", cfg)
        sizes |= test_sizes
        check_same_classes(folder, classes, test_classes)
        # files are listed class by class: a seeded order makes any first-N subset hold every class
        train_files, train_labels = in_seeded_order(train_files, train_labels, cfg.seed, TRAIN_ORDER_STREAM)
        test_files, test_labels = in_seeded_order(test_files, test_labels, cfg.seed, TEST_ORDER_STREAM)
        log.info(
            "%s: train/ (%d images) and test/ (%d images) are the splits; dataset.val_fraction is not used",
            folder,
            len(train_files),
            len(test_files),
        )
        train, test = source(train_files, train_labels), source(test_files, test_labels)
        split = "train/ and test/ folders"
        n_files = len(train_files) + len(test_files)
    else:
        files, labels, classes, sizes = readable_files(folder, cfg)
        require(len(files) > 1, "dataset.path", f"{folder.resolve()} holds 1 readable image; a split needs 2")
        order = torch.randperm(len(files), generator=seeded_generator(cfg.seed, SPLIT_STREAM)).tolist()
        n_test = min(max(1, round(len(files) * cfg.val_fraction)), len(files) - 1)
        train = source([files[i] for i in order[n_test:]], [labels[i] for i in order[n_test:]])
        test = source([files[i] for i in order[:n_test]], [labels[i] for i in order[:n_test]])
        split = f"held-out share {cfg.val_fraction} (seed {cfg.seed})"
        n_files = len(files)
    say_how_images_are_resized(folder, sizes, cfg.image_size)
    listing = listing_digest(folder)
    return ImageData(
        name="image_folder",
        channels=cfg.channels,
        image_size=cfg.image_size,
        num_classes=len(classes) or None,
        train=train,
        test=test,
        source=f"image_folder {folder.resolve()} ({n_files} files, {split}, listing {listing})",
        digest=f"listing {listing}",
    )
