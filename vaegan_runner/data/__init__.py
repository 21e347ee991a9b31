"""Datasets by name: ``load_data`` builds the train/test sources of the dataset a config names.

Each dataset module registers its loader and config dataclass in ``DATASETS`` (``sources.py``)
where the loader is defined: ``@DATASETS.register("cifar10", config=Cifar10Config)``.
"""

from __future__ import annotations

import torch

from . import cifar, idx, image_folder, shapes  # noqa: F401  (each registers its datasets)
from .labelled import UNLABELLED, draw_labelled, training_batches
from .pixels import PIXEL_RANGES, to_pixels, to_unit
from .sources import DATASETS, ImageData, ImageSource

DATASET_NAMES = DATASETS.names()


def dataset_schema(name: str) -> type:
    """The config dataclass of a dataset; an unknown name is a ConfigError on ``dataset``."""
    return DATASETS.get(name).config


def load_data(cfg, device: torch.device) -> ImageData:
    """Load the dataset that ``cfg`` (from ``typed(dataset_schema(name), node, "dataset")``) describes,
    with its labelled subset when ``dataset.labelled`` is set."""
    data = DATASETS.get(cfg.name).load(cfg, device)
    if getattr(cfg, "labelled", None) is not None:
        data.labelled = draw_labelled(data, cfg.labelled)
    return data


__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "PIXEL_RANGES",
    "UNLABELLED",
    "ImageData",
    "ImageSource",
    "dataset_schema",
    "load_data",
    "to_pixels",
    "to_unit",
    "training_batches",
]
