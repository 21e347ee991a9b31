"""Building blocks every family shares: encoder, decoder/generator and discriminator bodies.

``model.net.arch`` picks DCGAN-style convolutions (``conv``) or the fully connected
networks of the classic tutorials (``mlp``).
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING
from torch import nn

from ...config.checks import ConfigError, one_of, positive, require
from .conv import MAX_HALVINGS, MIN_HALVINGS, ConvDecoder, ConvEncoder, conv_sizes, halvings
from .mlp import MLPDecoder, MLPEncoder, vector_mlp

ARCHS = ("conv", "mlp")
NORMS = ("batch", "layer", "none")


@dataclass
class NetConfig:
    arch: str = MISSING  # conv | mlp
    width: int = MISSING  # conv: channels of the first layer (doubles per halving)
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


def body_blocks(net: NetConfig, image_size: int | None = None) -> range:
    """How many blocks the body ``build_encoder`` makes has (``len(features(x))``): one per
    halving for conv (so it depends on ``image_size``), one per hidden layer for mlp. With
    ``image_size`` None, the range over every size the architecture can make."""
    if net.arch != "conv":
        return range(len(net.hidden), len(net.hidden) + 1)
    if image_size is None:
        return range(MIN_HALVINGS, MAX_HALVINGS + 1)
    check_image_size(net, image_size)
    n = halvings(image_size)[1]
    return range(n, n + 1)


def sizes_with_blocks(n: int) -> list[int]:
    """The conv image sizes whose encoder body has ``n`` blocks."""
    return [size for size in conv_sizes() if halvings(size)[1] == n]


def build_encoder(
    net: NetConfig, channels: int, image_size: int, out_dim: int, norm: str | None = None, spectral_norm: bool = False
) -> nn.Module:
    """x -> [B, out_dim]; ``.features(x)`` gives the activation after each block."""
    norm = net.norm if norm is None else norm
    if net.arch == "conv":
        return init_weights(ConvEncoder(channels, image_size, net.width, out_dim, norm, spectral_norm))
    return init_weights(MLPEncoder(channels, image_size, list(net.hidden), out_dim, norm, spectral_norm))


def build_decoder(net: NetConfig, channels: int, image_size: int, in_dim: int) -> nn.Module:
    """z -> logits [B, C, H, W]; the family applies the output activation."""
    if net.arch == "conv":
        return init_weights(ConvDecoder(channels, image_size, net.width, in_dim, net.norm))
    return init_weights(MLPDecoder(channels, image_size, list(net.hidden), in_dim, net.norm))


def init_weights(module: nn.Module) -> nn.Module:
    """DCGAN initialisation: N(0, 0.02) weights, N(1, 0.02) norm scales, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = getattr(m, "parametrizations", None)
            w = m.parametrizations.weight.original if weight is not None else m.weight
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
    "body_blocks",
    "build_encoder",
    "build_decoder",
    "check_image_size",
    "conv_sizes",
    "init_weights",
    "sizes_with_blocks",
    "vector_mlp",
]
