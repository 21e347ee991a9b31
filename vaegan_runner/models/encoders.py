"""Encoders shared by the families: q(z|x) as a Gaussian, or a deterministic z = E(x).

An encoder network outputs ``latent_dim`` numbers (deterministic) or twice that: the mean
and log-variance side by side (Gaussian, sampled with the reparameterisation trick).

Two mixins give a family its ``encode`` (and ``generate``, ``code``) from that network:

    GaussianAutoencoder  always Gaussian (VAE, VAE-GAN)
    SwitchableEncoder    ``model.encoder_type`` picks deterministic or Gaussian (AAE, BiGAN)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from .conditioning import run
from .losses import reparameterize

ENCODER_TYPES = ("deterministic", "gaussian")


def gaussian_posterior(
    encoder: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) of q(z|x) (or q(z|x, y), for an encoder that takes labels) from an encoder
    whose output is the two halves side by side."""
    mu, logvar = run(encoder, x, y).chunk(2, dim=1)
    return mu, logvar.clamp(-30.0, 20.0)


class GaussianAutoencoder:
    """Sampling and encoding shared by the families with a Gaussian encoder and a decoder
    (VAE, VAE-GAN): codes are posterior means, images are decoded pixels."""

    # what the mixin reads of the Family it is mixed into (annotations only)
    encoder: nn.Module
    decoder: nn.Module
    activate: Callable[[torch.Tensor], torch.Tensor]
    labels_or_balanced: Callable[[int, torch.Tensor | None], torch.Tensor | None]

    @torch.no_grad()
    def generate(self, z, y=None):
        return self.activate(run(self.decoder, z, self.labels_or_balanced(z.shape[0], y)))

    @torch.no_grad()
    def encode(self, x, y=None):
        return gaussian_posterior(self.encoder, x, y)[0]


class EncoderTypeSettings(Protocol):
    """The keys of ``model.*`` that ``SwitchableEncoder`` reads."""

    @property
    def latent_dim(self) -> int: ...

    @property
    def encoder_type(self) -> str: ...


class SwitchableEncoder:
    """``code`` and ``encode`` for a family whose ``cfg.encoder_type`` picks the encoder kind."""

    # what the mixin reads of the Family it is mixed into (annotations only)
    cfg: EncoderTypeSettings
    encoder: nn.Module

    def encoder_out_dim(self) -> int:
        """How many numbers the encoder network outputs: z, or mu and logvar side by side."""
        return self.cfg.latent_dim * (2 if self.cfg.encoder_type == "gaussian" else 1)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """z for training: E(x), or a reparameterised draw from q(z|x)."""
        if self.cfg.encoder_type == "deterministic":
            return self.encoder(x)
        return reparameterize(*gaussian_posterior(self.encoder, x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E(x), or the posterior mean (the encoder takes no labels: ``y`` is not read)."""
        if self.cfg.encoder_type == "deterministic":
            return self.encoder(x)
        return gaussian_posterior(self.encoder, x)[0]
