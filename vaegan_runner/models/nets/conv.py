"""DCGAN-style convolutional networks (Radford et al. 2016) that adapt to the image size.

An image of side ``base * 2**n`` (base 4 or 7) is halved ``n`` times by 4x4 stride-2
convolutions down to a ``base x base`` map; the decoder mirrors that with transposed
convolutions. Channel counts start at ``width`` and double at each halving, capped at
``8 * width``.
"""

from __future__ import annotations

import torch
from torch import nn

BASE_SIDES = (4, 7)
MIN_HALVINGS, MAX_HALVINGS = 2, 5


def conv_sizes() -> list[int]:
    """Every image side the conv networks can make, smallest first."""
    return sorted(b * 2**n for b in BASE_SIDES for n in range(MIN_HALVINGS, MAX_HALVINGS + 1))


def halvings(image_size: int) -> tuple[int, int] | None:
    """(base side, number of halvings) for ``image_size``, or None if it cannot be made."""
    for base in BASE_SIDES:
        for n in range(MIN_HALVINGS, MAX_HALVINGS + 1):
            if base * 2**n == image_size:
                return base, n
    return None


def checked_halvings(image_size: int) -> tuple[int, int]:
    """``halvings(image_size)``, refused when the conv networks cannot make that size
    (``check_image_size`` refuses it first for a run's config)."""
    sides = halvings(image_size)
    if sides is None:
        raise ValueError(
            f"the conv networks cannot make {image_size}x{image_size} images; allowed sizes: {conv_sizes()}"
        )
    return sides


def _channels(width: int, n: int) -> list[int]:
    return [min(width * 2**i, 8 * width) for i in range(n)]


def norm2d(kind: str, channels: int) -> nn.Module:
    """The 2-d normalisation layer ``kind`` names (batch | layer | none) for ``channels`` channels."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # LayerNorm over (C, H, W), safe for gradient penalties
    return nn.Identity()


class ConvEncoder(nn.Module):
    """x [B,C,H,W] -> [B, out_dim]. Also the discriminator body (out_dim=1).

    ``features(x)`` returns the activation after each conv block, for feature-space losses.
    """

    def __init__(
        self, channels: int, image_size: int, width: int, out_dim: int, norm: str = "batch", spectral_norm: bool = False
    ):
        super().__init__()
        base, n = checked_halvings(image_size)
        widths = _channels(width, n)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        blocks, c_in = [], channels
        for i, c_out in enumerate(widths):
            layers = [wrap(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=(i == 0 or norm == "none")))]
            if i > 0:  # DCGAN: no normalisation on the first layer
                layers.append(norm2d(norm, c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = wrap(nn.Linear(c_in * base * base, out_dim))
        self.feature_dim = c_in * base * base

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x.flatten(1))


class ConvDecoder(nn.Module):
    """z [B, in_dim] -> logits [B,C,H,W] (no output activation: the family applies it)."""

    def __init__(self, channels: int, image_size: int, width: int, in_dim: int, norm: str = "batch"):
        super().__init__()
        base, n = checked_halvings(image_size)
        widths = _channels(width, n)[::-1]  # widest first
        self.base, self.c0 = base, widths[0]
        self.project = nn.Sequential(
            nn.Linear(in_dim, widths[0] * base * base, bias=(norm == "none")),
            nn.Unflatten(1, (widths[0], base, base)),
            norm2d(norm, widths[0]),
            nn.ReLU(inplace=True),
        )
        layers = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=(norm == "none")),
                norm2d(norm, c_out),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z))
