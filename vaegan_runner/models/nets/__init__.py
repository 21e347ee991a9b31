"""Building blocks every family shares: encoder, decoder/generator and discriminator bodies.

``model.net.arch`` picks DCGAN-style convolutions (``conv``), SNGAN's residual networks
(``resnet``, 32 and 64 pixels; ``resnet.py`` says what ``width`` means there) or the fully
connected networks of the classic tutorials (``mlp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from omegaconf import MISSING
from torch import nn

from ...config.checks import ConfigError, one_of, positive, require
from .conv import ConvDecoder, ConvEncoder, checked_halvings, conv_sizes, halvings
from .mlp import MLPDecoder, MLPEncoder, vector_mlp
from .resnet import ResNetDecoder, ResNetEncoder, feature_count, resnet_sizes

ARCHS = ("conv", "resnet", "mlp")
NORMS = ("batch", "layer", "none")

# What ``build_encoder`` makes: x -> [B, out_dim], with ``blocks``, ``head``, ``feature_dim`` and
# ``features(x)`` (a discriminator's body reads them)
EncoderBody = ConvEncoder | ResNetEncoder | MLPEncoder
ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclass
class NetConfig:
    arch: str = MISSING  # conv | resnet | mlp
    width: int = MISSING  # conv: channels of the first layer (doubles per halving); resnet: D's channels (G: 2x)
    hidden: list[int] = MISSING  # mlp: hidden layer sizes, input side first
    norm: str = MISSING  # batch | layer | none (encoder and decoder/generator)

    def __post_init__(self):
        one_of(self.arch, ARCHS, "net.arch")
        positive(self.width, "net.width")
        require(
            len(self.hidden) > 0 and all(h > 0 for h in self.hidden),
            "net.hidden",
            f"needs at least one positive layer size, got {list(self.hidden)}",
        )
        one_of(self.norm, NORMS, "net.norm")


@dataclass
class DiscriminatorConfig:
    norm: str = MISSING  # batch | layer | none (none or layer for wgan-gp)
    spectral_norm: bool = MISSING  # spectral normalisation of every layer (Miyato et al. 2018)

    def __post_init__(self):
        one_of(self.norm, NORMS, "discriminator.norm")


def sizes_of(arch: str) -> list[int] | None:
    """Every image side ``arch`` can make, smallest first; None: any size (mlp)."""
    return {"conv": conv_sizes, "resnet": resnet_sizes}.get(arch, lambda: None)()


def _listed_sizes(arch: str) -> list[int]:
    """``sizes_of(arch)`` for an architecture with a list of sizes (conv, resnet)."""
    sizes = sizes_of(arch)
    if sizes is None:
        raise ValueError(f"model.net.arch={arch} makes any image size; it has no list of sizes")
    return sizes


def check_image_size(net: NetConfig, image_size: int) -> None:
    """Raise ConfigError if the architecture cannot make ``image_size`` x ``image_size`` images."""
    if net.arch == "conv" and halvings(image_size) is None:
        sizes = ", ".join(map(str, conv_sizes()))
        raise ConfigError(
            "dataset.image_size",
            f"{image_size} cannot be made by the conv networks, which halve the image down to "
            f"a 4x4 or 7x7 map; allowed sizes are {sizes}. Pick one of those, or use "
            f"model.net.arch=mlp, which takes any size.",
        )
    if net.arch == "resnet" and image_size not in resnet_sizes():
        sizes = " and ".join(map(str, resnet_sizes()))
        raise ConfigError(
            "dataset.image_size",
            f"{image_size} cannot be made by the resnet networks (SNGAN's, which grow a 4x4 map by one "
            f"up-sampling block per doubling); allowed sizes are {sizes}. Set dataset.image_size to one "
            f"of those (MNIST, Fashion-MNIST and CIFAR-10 resize at load), or use model.net.arch=conv "
            f"({', '.join(map(str, conv_sizes()))}) or model.net.arch=mlp (any size).",
        )


def _blocks_at(arch: str, image_size: int) -> int:
    return checked_halvings(image_size)[1] if arch == "conv" else feature_count(image_size)


def body_blocks(net: NetConfig, image_size: int | None = None) -> range:
    """How many blocks the body ``build_encoder`` makes has (``len(features(x))``): one per
    halving for conv, one per residual block plus the pooled vector for resnet (both depend on
    ``image_size``), one per hidden layer for mlp. With ``image_size`` None, the range over every
    size the architecture can make."""
    if net.arch == "mlp":
        return range(len(net.hidden), len(net.hidden) + 1)
    if image_size is None:
        counts = [_blocks_at(net.arch, size) for size in _listed_sizes(net.arch)]
        return range(min(counts), max(counts) + 1)
    check_image_size(net, image_size)
    n = _blocks_at(net.arch, image_size)
    return range(n, n + 1)


def sizes_with_blocks(n: int, arch: str = "conv") -> list[int]:
    """The image sizes at which ``arch`` (conv or resnet) makes an encoder body of ``n`` blocks."""
    return [size for size in _listed_sizes(arch) if _blocks_at(arch, size) == n]


def build_encoder(
    net: NetConfig, channels: int, image_size: int, out_dim: int, norm: str | None = None, spectral_norm: bool = False
) -> EncoderBody:
    """x -> [B, out_dim]; ``.features(x)`` gives the activation after each block."""
    norm = net.norm if norm is None else norm
    if net.arch == "conv":
        return init_weights(ConvEncoder(channels, image_size, net.width, out_dim, norm, spectral_norm))
    if net.arch == "resnet":  # SNGAN's own initialisation (resnet.py)
        return ResNetEncoder(channels, image_size, net.width, out_dim, norm, spectral_norm)
    return init_weights(MLPEncoder(channels, image_size, list(net.hidden), out_dim, norm, spectral_norm))


def build_decoder(net: NetConfig, channels: int, image_size: int, in_dim: int) -> nn.Module:
    """z -> logits [B, C, H, W]; the family applies the output activation."""
    if net.arch == "conv":
        return init_weights(ConvDecoder(channels, image_size, net.width, in_dim, net.norm))
    if net.arch == "resnet":  # the generator has twice the discriminator's channels, as SNGAN's
        return ResNetDecoder(channels, image_size, 2 * net.width, in_dim, net.norm)
    return init_weights(MLPDecoder(channels, image_size, list(net.hidden), in_dim, net.norm))


def init_weights(module: ModuleT) -> ModuleT:
    """DCGAN initialisation: N(0, 0.02) weights, N(1, 0.02) norm scales, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = getattr(m, "parametrizations", None)
            w = weight.weight.original if weight is not None else m.weight
            nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


__all__ = [
    "NetConfig",
    "DiscriminatorConfig",
    "EncoderBody",
    "body_blocks",
    "build_encoder",
    "build_decoder",
    "check_image_size",
    "conv_sizes",
    "init_weights",
    "resnet_sizes",
    "sizes_of",
    "sizes_with_blocks",
    "vector_mlp",
]
