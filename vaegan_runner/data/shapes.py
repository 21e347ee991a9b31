"""Synthetic shapes: ellipses, rectangles and triangles rendered in torch, no download needed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import MISSING

from ..config.checks import folder_or_absent, one_of, positive, require
from .decoded_cache import cached_splits
from .sources import DATASETS, ImageData, in_memory_data, seeded_generator

CLASSES = ("ellipse", "rectangle", "triangle")  # label = index
TRAIN_STREAM, TEST_STREAM = 0, 1
RENDER_VERSION = 1  # part of the cache key: bump when a change to the renderer changes its images


@dataclass
class ShapesConfig:
    name: str = MISSING
    image_size: int = MISSING
    channels: int = MISSING
    n_train: int = MISSING
    n_test: int = MISSING
    seed: int = MISSING
    binarize: bool = MISSING
    labelled: int | None = MISSING  # semi-supervised: keep the labels of this many training images (labelled.py)
    cache_dir: str | None = MISSING  # decoded-dataset cache (decoded_cache.py); null: off

    def __post_init__(self):
        folder_or_absent(self.cache_dir, "cache_dir")
        one_of(self.name, ["shapes"], "name")
        require(self.image_size >= 8, "image_size", f"must be >= 8, got {self.image_size}")
        one_of(self.channels, [1, 3], "channels")
        positive(self.n_train, "n_train")
        positive(self.n_test, "n_test")


def render_shapes(
    n: int, image_size: int, channels: int, generator: torch.Generator, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """n random shapes on black, uint8 [n, channels, S, S], and their int64 class labels.

    Coordinates run over [-1, 1]. Each shape fits in a circle of radius 0.5..0.8 placed so
    that it stays a pixel inside the border; edges are anti-aliased over about one pixel.
    """

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    labels = torch.randint(0, len(CLASSES), (n,), generator=generator)
    radius = uniform(0.5, 0.8, n)
    minor = radius * uniform(0.6, 1.0, n)  # ellipse: semi-axes radius and minor
    corner = uniform(math.radians(32), math.radians(45), n)  # rectangle: half-diagonal radius at this angle
    angle = uniform(0, 2 * math.pi, n)
    room = (1 - radius - 2 / image_size).clamp(min=0)
    centre = uniform(-1, 1, n, 2) * room[:, None]
    if channels == 1:
        colour = uniform(0.5, 1.0, n, 1)
    else:  # a random colour whose brightest channel is 0.6..1
        colour = uniform(0.05, 1.0, n, 3)
        colour = colour / colour.amax(1, keepdim=True) * uniform(0.6, 1.0, n, 1)
    params = (labels, radius, minor, corner, angle, centre, colour)
    images = [_render(image_size, *part) for part in zip(*(p.split(chunk) for p in params))]
    return torch.cat(images), labels


def _render(size, labels, radius, minor, corner, angle, centre, colour) -> torch.Tensor:
    """Rasterise one chunk of shapes from their parameters (one row per shape)."""
    grid = (torch.arange(size) + 0.5) / size * 2 - 1  # pixel centres
    radius, minor, corner, angle = (t[:, None, None] for t in (radius, minor, corner, angle))
    dx, dy = grid[None, None, :] - centre[:, 0, None, None], grid[None, :, None] - centre[:, 1, None, None]
    u, v = angle.cos() * dx + angle.sin() * dy, angle.cos() * dy - angle.sin() * dx  # in the shape's frame
    dist = torch.empty_like(u)  # (approximate) signed distance to the outline, < 0 inside
    for label, shape in enumerate(CLASSES):
        m = labels == label
        um, vm, r = u[m], v[m], radius[m]
        if shape == "ellipse":
            dist[m] = (torch.sqrt((um / r) ** 2 + (vm / minor[m]) ** 2) - 1) * minor[m]
        elif shape == "rectangle":
            dist[m] = torch.maximum(um.abs() - r * corner[m].cos(), vm.abs() - r * corner[m].sin())
        else:  # equilateral triangle: its three edges lie radius / 2 from the centre
            normals = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
            edges = torch.stack([um * math.cos(a) + vm * math.sin(a) for a in normals])
            dist[m] = edges.amax(0) - r / 2
    coverage = (0.5 - dist * (size / 2)).clamp_(0, 1)
    return (coverage[:, None] * colour[:, :, None, None] * 255).round_().to(torch.uint8)


@DATASETS.register("shapes", config=ShapesConfig)
def load_shapes(cfg: ShapesConfig, device: torch.device) -> ImageData:
    def split(n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        return render_shapes(n, cfg.image_size, cfg.channels, seeded_generator(cfg.seed, stream))

    source = {"render_version": RENDER_VERSION, "n_train": cfg.n_train, "n_test": cfg.n_test, "seed": cfg.seed}
    train, test = cached_splits(
        cfg.cache_dir,
        "shapes",
        cfg.image_size,
        cfg.channels,
        source,
        lambda: (split(cfg.n_train, TRAIN_STREAM), split(cfg.n_test, TEST_STREAM)),
    )
    return in_memory_data(
        "shapes", train, test, num_classes=len(CLASSES), device=device, binarize_seed=cfg.seed if cfg.binarize else None
    )
