"""Class conditioning (``model.conditional=true``): how a label y enters a network.

Four ways, each from the paper that made it standard, shared by the five families:

    LabelledDecoder        p(x | z, y): the one-hot label joins z at the decoder's input
                           (conditional GAN, Mirza & Osindero 2014; CVAE, Sohn et al. 2015;
                           the supervised AAE, Makhzani et al. 2015, Fig. 6)
    LabelledEncoder        q(z | x, y): one-hot label maps join the image as extra channels
                           (CVAE's recognition network)
    ProjectionDiscriminator D(x, y) = head(phi(x)) + <embed(y), phi(x)>
                           (Miyato & Koyama 2018, "cGANs with Projection Discriminator"),
                           optionally with ACGAN's auxiliary classifier C(phi(x)) (Odena et al. 2017)
    LabelledCodeDiscriminator D(z, y): the one-hot label joins a code at an MLP's input (the
                           AAE's code discriminator, when it must tell codes apart class by class)

A network that takes labels has ``takes_labels = True``; ``run(net, inputs, y)`` calls it with
or without them, so a family's code reads the same conditional or not. An unconditional family
builds the plain networks, so its state dict (and every checkpoint) is what it always was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .nets import EncoderBody, NetConfig, build_decoder, build_encoder


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y.long(), num_classes).float()


def balanced_labels(n: int, num_classes: int, device: torch.device | str) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ...: n labels, every class as often as n allows."""
    return torch.arange(n, device=device) % num_classes


def run(net: nn.Module, inputs: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``net(inputs, y)`` for a network that takes labels, ``net(inputs)`` for any other."""
    if getattr(net, "takes_labels", False):
        if y is None:
            raise ValueError(f"{type(net).__name__} is class-conditional: give the labels")
        return net(inputs, y)
    return net(inputs)


class _LabelBesideVector(nn.Module):
    """[z, one_hot(y)] -> the wrapped network (built with ``len(z) + num_classes`` inputs), held
    under the attribute ``wrapped`` names, which is its state-dict prefix."""

    takes_labels = True
    wrapped = "net"

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__()
        setattr(self, self.wrapped, net)
        self.num_classes = num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.wrapped)(torch.cat([z, one_hot(y, self.num_classes).to(z.dtype)], dim=1))


class LabelledDecoder(_LabelBesideVector):
    """p(x | z, y): the one-hot label beside z at the decoder's input."""

    wrapped = "decoder"


class LabelledCodeDiscriminator(_LabelBesideVector):
    """The AAE's D(z, y): the one-hot label beside the code at the MLP's input."""

    wrapped = "mlp"


class LabelledEncoder(nn.Module):
    """[x, one_hot(y) as constant maps] -> the wrapped encoder (built with ``channels +
    num_classes`` input channels)."""

    takes_labels = True

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder, self.num_classes = encoder, num_classes

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        maps = one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.encoder(torch.cat([x, maps], dim=1))


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = head(phi(x)) + <embed(y), phi(x)>, phi the body's last block, flattened.

    ``body`` is ``build_encoder``'s network with one output (``blocks``, ``head``,
    ``feature_dim``); ``features(x)`` is the body's, label-free, for feature-space losses.
    With ``auxiliary``, ``forward(x, y, with_classes=True)`` also returns class logits
    C(phi(x)) [B, num_classes] from a linear head on the same features.
    """

    takes_labels = True

    def __init__(self, body: EncoderBody, num_classes: int, spectral_norm: bool = False, auxiliary: bool = False):
        super().__init__()
        self.body = body
        embed = nn.Embedding(num_classes, body.feature_dim)
        nn.init.normal_(embed.weight, 0.0, 0.02)
        self.embed = nn.utils.parametrizations.spectral_norm(embed) if spectral_norm else embed
        self.classifier = nn.Linear(body.feature_dim, num_classes) if auxiliary else None

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body.features(x)

    def logits(self, last_features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The logits from the body's last block (flattened) and the labels."""
        projection = (self.embed(y.long()) * last_features).sum(dim=1, keepdim=True)
        return self.body.head(last_features) + projection

    def forward(self, x: torch.Tensor, y: torch.Tensor, with_classes: bool = False):
        last = self.body.features(x)[-1].flatten(1)
        if with_classes:
            if self.classifier is None:
                raise ValueError("with_classes=True needs the auxiliary class head (auxiliary=True)")
            return self.logits(last, y), self.classifier(last)
        return self.logits(last, y)


# --- builders: the plain network when num_classes is None ------------------------------------
def decoder_for(net: NetConfig, channels: int, image_size: int, latent_dim: int, num_classes: int | None):
    """p(x|z), or p(x|z, y) with ``num_classes``."""
    if num_classes is None:
        return build_decoder(net, channels, image_size, latent_dim)
    return LabelledDecoder(build_decoder(net, channels, image_size, latent_dim + num_classes), num_classes)


def encoder_for(net: NetConfig, channels: int, image_size: int, out_dim: int, num_classes: int | None):
    """q(z|x), or q(z|x, y) with ``num_classes``."""
    if num_classes is None:
        return build_encoder(net, channels, image_size, out_dim)
    return LabelledEncoder(build_encoder(net, channels + num_classes, image_size, out_dim), num_classes)


def discriminator_for(
    net: NetConfig,
    channels: int,
    image_size: int,
    norm: str,
    spectral_norm: bool,
    num_classes: int | None,
    auxiliary: bool = False,
):
    """D(x), or the projection discriminator D(x, y) with ``num_classes`` (and ``auxiliary``:
    ACGAN's class head)."""
    body = build_encoder(net, channels, image_size, 1, norm, spectral_norm)
    return body if num_classes is None else ProjectionDiscriminator(body, num_classes, spectral_norm, auxiliary)
