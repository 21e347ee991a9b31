"""Datasets by name: their config dataclasses, and ``load_data`` that builds train/test sources."""

from __future__ import annotations

import torch

from ..config import one_of
from .cifar import Cifar10Config, load_cifar10
from .idx import MnistConfig, load_mnist_family
from .image_folder import ImageFolderConfig, load_image_folder
from .pixels import PIXEL_RANGES, to_pixels, to_unit
from .shapes import ShapesConfig, load_shapes
from .sources import ImageData, ImageSource

_REGISTRY = {  # name -> (config dataclass, loader)
    "mnist": (MnistConfig, load_mnist_family),
    "fashion_mnist": (MnistConfig, load_mnist_family),
    "cifar10": (Cifar10Config, load_cifar10),
    "image_folder": (ImageFolderConfig, load_image_folder),
    "shapes": (ShapesConfig, load_shapes),
}
DATASET_NAMES = tuple(_REGISTRY)


def dataset_schema(name: str) -> type:
    """The config dataclass of a dataset; an unknown name is a ConfigError on ``dataset``."""
    one_of(name, DATASET_NAMES, "dataset")
    return _REGISTRY[name][0]


def load_data(cfg, device: torch.device) -> ImageData:
    """Load the dataset that ``cfg`` (from ``typed(dataset_schema(name), node, "dataset")``) describes."""
    dataset_schema(cfg.name)
    return _REGISTRY[cfg.name][1](cfg, device)


__all__ = [
    "DATASET_NAMES", "PIXEL_RANGES", "ImageData", "ImageSource",
    "dataset_schema", "load_data", "to_pixels", "to_unit",
]
