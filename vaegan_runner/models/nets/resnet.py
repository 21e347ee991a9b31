"""SNGAN's ResNet generator and discriminator (``model.net.arch=resnet``).

Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks", the CIFAR-10
ResNets of its appendix, as their Chainer code and the PyTorch re-implementations (mimicry,
PyTorch-StudioGAN) build them; Miyato & Koyama 2018 put the class projection on the same
discriminator. For 32x32 images (SNGAN's normalisation: batch norm in G, none in D):

    generator   z -> Linear -> 4x4 map -> 3 up blocks (4 -> 8 -> 16 -> 32) -> norm, ReLU, 3x3 conv -> image
                up block:    norm, ReLU, nearest x2, 3x3 conv, norm, ReLU, 3x3 conv
                             + shortcut: nearest x2, 1x1 conv
    discriminator x -> optimised block (32 -> 16) -> down block (16 -> 8) -> 2 blocks at 8x8
                -> ReLU, sum over positions (mean without spectral norm, below) -> Linear
                optimised:   3x3 conv, ReLU, 3x3 conv, 2x2 average pool + shortcut: 2x2 average pool, 1x1 conv
                down block:  ReLU, 3x3 conv, ReLU, 3x3 conv, 2x2 average pool + shortcut: 1x1 conv, 2x2 average pool
                block:       ReLU, 3x3 conv, ReLU, 3x3 conv + identity shortcut

At 64x64 the generator has one more up block and the discriminator one more down block (both
end, as at 32, on a 4x4 and an 8x8 map). The networks keep one channel count throughout:
``model.net.width`` channels in the discriminator (or encoder), twice that in the generator
(or decoder), so ``width=128`` gives SNGAN's CIFAR-10 pair (G 256, D 128).

Normalisation: the generator's is ``model.net.norm`` (batch, as SNGAN; layer; none), before
every ReLU. The discriminator's (``discriminator.norm``; an encoder's is ``model.net.norm``) goes
before every ReLU inside the blocks; ``none`` is SNGAN's discriminator, which has none.
Spectral normalisation, when the family asks for it, wraps every convolution and the linear
head of the discriminator; the generator never has it (as in SNGAN).

Pooling: with spectral normalisation the last map is summed over its positions, as in SNGAN.
Without it, it is averaged, as in the ResNet discriminator of WGAN-GP (Gulrajani et al. 2017),
which has the same blocks: summed, the 64 positions of an encoder with batch norm gave initial
outputs of standard deviation 57 (width 128, 32x32 inputs; a VAE's log-variances would start at
their clamp), averaged about 1. With spectral normalisation the scale is SNGAN's, whatever the
initial weights.

``features(x)`` gives the output of each residual block, then the pooled vector (ReLU and
pooling, [B, width]) that the head reads: ``head(features(x)[-1])`` is ``forward(x)``, and
a projection discriminator's class embedding or an auxiliary classifier reads that same
``width``-dimensional vector, as in Miyato & Koyama 2018. The VAE-GAN's ``model.feature_layer=-2``
is then the last 8x8 map (``-1``, the pooled vector, keeps no positions).

Initialisation is SNGAN's: Xavier-uniform weights, gain sqrt(2) for the 3x3 convolutions inside
the residual branches and 1 for the shortcuts, the linear layers and the output convolution;
zero biases.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .conv import norm2d

BOTTOM = 4  # the generator starts from a BOTTOM x BOTTOM map
SIZES = (32, 64)  # image sides the networks make: BOTTOM * 2**n for n = 3, 4
RESIDUAL_GAIN = math.sqrt(2.0)


def resnet_sizes() -> list[int]:
    """Every image side the resnet networks can make, smallest first."""
    return list(SIZES)


def up_blocks(image_size: int) -> int:
    """Up-sampling blocks of the generator for ``image_size`` (3 at 32, 4 at 64)."""
    return round(math.log2(image_size // BOTTOM))


def feature_count(image_size: int) -> int:
    """Entries of the discriminator's ``features(x)``: its residual blocks (one more than the
    generator's up blocks) and the pooled vector."""
    return up_blocks(image_size) + 2


Layer = TypeVar("Layer", nn.Conv2d, nn.Linear)


def _init(module: Layer, gain: float) -> Layer:
    nn.init.xavier_uniform_(module.weight, gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def _identity(module: nn.Module) -> nn.Module:
    return module


def _conv(c_in: int, c_out: int, kernel: int, gain: float, wrap=_identity) -> nn.Module:
    return wrap(_init(nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2), gain))


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class UpBlock(nn.Module):
    """Generator block: norm, ReLU, nearest x2, 3x3 conv, norm, ReLU, 3x3 conv; shortcut:
    nearest x2, then a 1x1 conv."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.norm1, self.conv1 = norm2d(norm, channels), _conv(channels, channels, 3, RESIDUAL_GAIN)
        self.norm2, self.conv2 = norm2d(norm, channels), _conv(channels, channels, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(channels, channels, 1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_upsample(F.relu(self.norm1(x))))
        h = self.conv2(F.relu(self.norm2(h)))
        return h + self.shortcut(_upsample(x))


class OptimizedBlock(nn.Module):
    """The discriminator's first block, on the image itself (no activation before its first
    conv): 3x3 conv, norm, ReLU, 3x3 conv, 2x2 average pool; shortcut: 2x2 average pool, 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, norm: str, wrap):
        super().__init__()
        self.conv1 = _conv(c_in, c_out, 3, RESIDUAL_GAIN, wrap)
        self.norm = norm2d(norm, c_out)
        self.conv2 = _conv(c_out, c_out, 3, RESIDUAL_GAIN, wrap)
        self.shortcut = _conv(c_in, c_out, 1, 1.0, wrap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.norm(self.conv1(x)))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))


class DiscriminatorBlock(nn.Module):
    """Discriminator block: norm, ReLU, 3x3 conv, norm, ReLU, 3x3 conv, then (``downsample``) a
    2x2 average pool; shortcut: a 1x1 conv and the same pool when it down-samples, else the
    identity."""

    def __init__(self, channels: int, norm: str, wrap, downsample: bool):
        super().__init__()
        self.downsample = downsample
        self.norm1, self.conv1 = norm2d(norm, channels), _conv(channels, channels, 3, RESIDUAL_GAIN, wrap)
        self.norm2, self.conv2 = norm2d(norm, channels), _conv(channels, channels, 3, RESIDUAL_GAIN, wrap)
        self.shortcut = _conv(channels, channels, 1, 1.0, wrap) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x)))
        h = self.conv2(F.relu(self.norm2(h)))
        s = self.shortcut(x)
        if self.downsample:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class GlobalPool(nn.Module):
    """ReLU, then the sum (SNGAN) or the mean (WGAN-GP's ResNet) over positions: [B, C, H, W] -> [B, C]."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return x.sum(dim=(2, 3)) if self.mode == "sum" else x.mean(dim=(2, 3))

    def extra_repr(self) -> str:
        return self.mode


class ResNetEncoder(nn.Module):
    """x [B,C,H,W] -> [B, out_dim]: SNGAN's discriminator body (out_dim=1), or an encoder.

    ``features(x)`` returns the output of each residual block and, last, the pooled vector the
    head reads (``feature_dim`` = ``width`` numbers).
    """

    def __init__(
        self, channels: int, image_size: int, width: int, out_dim: int, norm: str = "none", spectral_norm: bool = False
    ):
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else _identity
        downs = up_blocks(image_size) - 2  # the optimised block halves once; the last two blocks keep 8x8
        blocks: list[nn.Module] = [OptimizedBlock(channels, width, norm, wrap)]
        blocks += [DiscriminatorBlock(width, norm, wrap, downsample=True) for _ in range(downs)]
        blocks += [DiscriminatorBlock(width, norm, wrap, downsample=False) for _ in range(2)]
        blocks.append(GlobalPool("sum" if spectral_norm else "mean"))
        self.blocks = nn.ModuleList(blocks)
        self.head = wrap(_init(nn.Linear(width, out_dim), 1.0))
        self.feature_dim = width

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class ResNetDecoder(nn.Module):
    """z [B, in_dim] -> logits [B,C,H,W]: SNGAN's generator (no output activation: the family
    applies it). ``width`` is its channel count throughout."""

    def __init__(self, channels: int, image_size: int, width: int, in_dim: int, norm: str = "batch"):
        super().__init__()
        self.project = nn.Sequential(
            _init(nn.Linear(in_dim, width * BOTTOM * BOTTOM), 1.0), nn.Unflatten(1, (width, BOTTOM, BOTTOM))
        )
        self.blocks = nn.Sequential(*[UpBlock(width, norm) for _ in range(up_blocks(image_size))])
        self.out = nn.Sequential(norm2d(norm, width), nn.ReLU(), _conv(width, channels, 3, 1.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.project(z)))
