"""Encoders shared by the families: q(z|x) as a Gaussian, or a deterministic z = E(x).

An encoder network outputs ``latent_dim`` numbers (deterministic) or twice that: the mean
and log-variance side by side (Gaussian, sampled with the reparameterisation trick).
"""

from __future__ import annotations

import torch
from torch import nn

from .losses import reparameterize

ENCODER_TYPES = ("deterministic", "gaussian")


def gaussian_posterior(encoder: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) of q(z|x) from an encoder whose output is the two halves side by side."""
    mu, logvar = encoder(x).chunk(2, dim=1)
    return mu, logvar.clamp(-30.0, 20.0)


class SwitchableEncoder:
    """``code`` and ``encode`` for a family whose ``cfg.encoder_type`` picks the encoder kind."""

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """z for training: E(x), or a reparameterised draw from q(z|x)."""
        if self.cfg.encoder_type == "deterministic":
            return self.encoder(x)
        return reparameterize(*gaussian_posterior(self.encoder, x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), or the posterior mean."""
        if self.cfg.encoder_type == "deterministic":
            return self.encoder(x)
        return gaussian_posterior(self.encoder, x)[0]
