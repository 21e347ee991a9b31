"""Conversions between stored uint8 images and the float pixels a model sees."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PIXEL_RANGES = ("unit", "symmetric")  # unit = [0, 1] (sigmoid / Bernoulli), symmetric = [-1, 1] (tanh)


def _check(pixel_range: str) -> None:
    if pixel_range not in PIXEL_RANGES:
        raise ValueError(f"pixel_range must be one of {', '.join(PIXEL_RANGES)}; got {pixel_range!r}")


def to_pixels(images: torch.Tensor, pixel_range: str) -> torch.Tensor:
    """uint8 images (0..255) -> float32 in [0, 1] or [-1, 1]."""
    _check(pixel_range)
    x = images.float() / 255
    return x if pixel_range == "unit" else x * 2 - 1


def to_unit(x: torch.Tensor, pixel_range: str) -> torch.Tensor:
    """Model-space pixels -> float32 in [0, 1], clamped (for image grids)."""
    _check(pixel_range)
    x = x.float()
    if pixel_range == "symmetric":
        x = (x + 1) / 2
    return x.clamp(0, 1)


def resize_images(images: torch.Tensor, size: int, chunk: int = 8192) -> torch.Tensor:
    """Resize uint8 [N, C, H, W] to size x size (antialiased bilinear), in chunks to bound memory."""
    if images.shape[-2:] == (size, size):
        return images
    out = []
    for part in images.split(chunk):
        x = F.interpolate(part.float(), size=(size, size), mode="bilinear", antialias=True)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)
