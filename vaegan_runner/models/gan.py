"""Generative adversarial network (Goodfellow et al. 2014; DCGAN networks, Radford et al. 2016).

    D <- min  L_D(D(x), D(G(z)))  [+ gp_weight * gradient penalty for wgan-gp]
    G <- min  L_G(D(G(z)))        every n_critic steps

with L the loss variant of ``model.loss``: nonsaturating (default), hinge, lsgan, wgan-gp.
Optionally spectral norm in D, and an exponential moving average of G used for samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from ..config.checks import non_negative, positive, require
from .adversarial import AdversarialConfig, discriminator_terms
from .base import FAMILIES, Family, Phase
from .ema import ema_copy, ema_update
from .losses import generator_loss, gradient_penalty
from .nets import DiscriminatorConfig, build_decoder, build_encoder


@dataclass
class EMAConfig:
    enabled: bool = MISSING
    decay: float = MISSING
    start_step: int = MISSING  # before this step the average is a plain copy

    def __post_init__(self):
        require(0.0 <= self.decay < 1.0, "ema.decay", f"must be in [0, 1), got {self.decay}")
        non_negative(self.start_step, "ema.start_step")


@dataclass
class GANConfig(AdversarialConfig):
    n_critic: int = MISSING  # discriminator steps per generator step
    discriminator: DiscriminatorConfig = MISSING
    ema: EMAConfig = MISSING

    def __post_init__(self):
        super().__post_init__()
        positive(self.n_critic, "n_critic")


@FAMILIES.register("gan")
class GAN(Family):
    config_class = GANConfig
    network_names = ("generator", "discriminator")

    def __init__(self, cfg: GANConfig, channels: int, image_size: int):
        super().__init__(cfg, channels, image_size)
        self.generator = build_decoder(cfg.net, channels, image_size, cfg.latent_dim)
        self.discriminator = build_encoder(
            cfg.net, channels, image_size, 1, cfg.discriminator.norm, cfg.discriminator.spectral_norm
        )
        self.generator_ema = ema_copy(self.generator) if cfg.ema.enabled else None
        self.phases = [
            Phase("discriminator", ("discriminator",), self.discriminator_losses),
            Phase("generator", ("generator",), self.generator_losses, interval=cfg.n_critic, after=self.update_ema),
        ]

    def fake(self, n: int) -> torch.Tensor:
        return self.activate(self.generator(self.sample_latent(n)))

    def discriminator_losses(self, x, step):
        with torch.no_grad():
            fake = self.fake(x.shape[0])
        loss, logs = discriminator_terms(
            self.cfg,
            self.discriminator(x),
            self.discriminator(fake),
            penalty=lambda: gradient_penalty(self.discriminator, x, fake),
        )
        return {"discriminator": loss}, logs

    def generator_losses(self, x, step):
        loss = generator_loss(self.cfg.loss, self.discriminator(self.fake(x.shape[0])))
        return {"generator": loss}, {"g": loss}

    def update_ema(self, step):
        if self.generator_ema is not None:
            decay = self.cfg.ema.decay if step >= self.cfg.ema.start_step else 0.0
            ema_update(self.generator_ema, self.generator, decay)

    @torch.no_grad()
    def evaluate(self, x):
        """D on held-out real images: ``eval/d_acc_real`` well below the training ``acc/d_real``
        means D memorises the training images."""
        _, logs = discriminator_terms(self.cfg, self.discriminator(x), self.discriminator(self.fake(x.shape[0])))
        return {"d": logs["d"], "d_acc_real": logs["acc/d_real"], "d_acc_fake": logs["acc/d_fake"]}

    @torch.no_grad()
    def generate(self, z):
        net = self.generator_ema if self.generator_ema is not None else self.generator
        return self.activate(net(z))
