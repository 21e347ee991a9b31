"""Fully connected networks: the small MLPs of the classic VAE and GAN tutorials."""

from __future__ import annotations

import math

import torch
from torch import nn


def _norm1d(kind: str, features: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    return nn.Identity()


class MLPEncoder(nn.Module):
    """x [B,C,H,W] -> [B, out_dim] through ``hidden`` layers. Also the discriminator body."""

    def __init__(
        self,
        channels: int,
        image_size: int,
        hidden: list[int],
        out_dim: int,
        norm: str = "none",
        spectral_norm: bool = False,
    ):
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        blocks, d_in = [], channels * image_size * image_size
        for i, d_out in enumerate(hidden):
            layers = [wrap(nn.Linear(d_in, d_out))]
            if i > 0:
                layers.append(_norm1d(norm, d_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            blocks.append(nn.Sequential(*layers))
            d_in = d_out
        self.blocks = nn.ModuleList(blocks)
        self.head = wrap(nn.Linear(d_in, out_dim))
        self.feature_dim = d_in

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], x.flatten(1)
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class MLPDecoder(nn.Module):
    """z [B, in_dim] -> logits [B,C,H,W] through ``hidden`` layers (applied widest last)."""

    def __init__(self, channels: int, image_size: int, hidden: list[int], in_dim: int, norm: str = "none"):
        super().__init__()
        layers, d_in = [], in_dim
        for d_out in reversed(hidden):
            layers += [nn.Linear(d_in, d_out), _norm1d(norm, d_out), nn.ReLU(inplace=True)]
            d_in = d_out
        shape = (channels, image_size, image_size)
        layers += [nn.Linear(d_in, math.prod(shape)), nn.Unflatten(1, shape)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def vector_mlp(sizes: list[int], dropout: float = 0.0, spectral_norm: bool = False) -> nn.Sequential:
    """[B, sizes[0]] -> [B, sizes[-1]]: Linear layers with LeakyReLU(0.2) (and dropout) between."""
    wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(wrap(nn.Linear(d_in, d_out)))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
