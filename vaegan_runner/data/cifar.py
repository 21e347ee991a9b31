"""CIFAR-10 through torchvision (its ``.data`` is uint8 [N, H, W, C]), held in memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import MISSING

from ..config.checks import one_of, require
from .decoded_cache import Split, cached_splits, file_identity
from .idx import missing_data_error, one_line
from .pixels import resize_images
from .sources import DATASETS, ImageData, in_memory_data

FOLDER = "cifar-10-batches-py"
FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


@dataclass
class Cifar10Config:
    name: str = MISSING
    root: str = MISSING
    image_size: int = MISSING
    channels: int = MISSING
    download: bool = MISSING
    binarize: bool = MISSING
    labelled: int | None = MISSING  # semi-supervised: keep the labels of this many training images (labelled.py)
    cache_dir: str | None = MISSING  # decoded-dataset cache (decoded_cache.py); null: off

    def __post_init__(self):
        one_of(self.name, ["cifar10"], "name")
        require(self.channels == 3, "channels", f"cifar10 has 3 channels; got {self.channels}")
        require(self.image_size >= 8, "image_size", f"must be >= 8, got {self.image_size}")
        require(not self.binarize, "binarize", "binarisation is for 1-channel data; keep it false for cifar10")


@DATASETS.register("cifar10", config=Cifar10Config)
def load_cifar10(cfg: Cifar10Config, device: torch.device) -> ImageData:
    root = Path(cfg.root).expanduser()
    files = [root / FOLDER / name for name in FILES]

    def tensors(split) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()
        return resize_images(images, cfg.image_size), torch.tensor(split.targets, dtype=torch.int64)

    def decode() -> tuple[Split, Split]:
        from torchvision.datasets import CIFAR10

        try:
            splits = [CIFAR10(str(root), train=train, download=cfg.download) for train in (True, False)]
        except Exception as err:  # missing, corrupt, or the download failed
            why = f"the download failed: {one_line(err)}" if cfg.download else "dataset.download is false"
            raise missing_data_error("CIFAR-10", root / FOLDER, FILES, f"{FOLDER}/", why) from None
        return tuple(tensors(split) for split in splits)

    # Missing files are fetched (or reported) by a first decode; the cache key needs them on disk.
    decoded = None if all(path.is_file() for path in files) else decode()
    train, test = cached_splits(
        cfg.cache_dir,
        "cifar10",
        cfg.image_size,
        cfg.channels,
        file_identity(files),
        lambda: decode() if decoded is None else decoded,
    )
    return in_memory_data("cifar10", train, test, num_classes=10, device=device)
