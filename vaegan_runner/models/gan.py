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

from ..config import non_negative, positive, require
from ..ema import ema_copy, ema_update
from ..losses import (check_gan_loss, discriminator_loss, generator_loss, gradient_penalty,
                      real_fake_accuracy)
from ..nets import DiscriminatorConfig, build_decoder, build_encoder
from .base import Family, FamilyConfig, Phase


@dataclass
class EMAConfig:
    enabled: bool = MISSING
    decay: float = MISSING
    start_step: int = MISSING  # before this step the average is a plain copy

    def __post_init__(self):
        require(0.0 <= self.decay < 1.0, "ema.decay", f"must be in [0, 1), got {self.decay}")
        non_negative(self.start_step, "ema.start_step")


@dataclass
class GANConfig(FamilyConfig):
    loss: str = MISSING       # nonsaturating | hinge | lsgan | wgan-gp
    gp_weight: float = MISSING  # gradient penalty weight (wgan-gp only)
    n_critic: int = MISSING   # discriminator steps per generator step
    discriminator: DiscriminatorConfig = MISSING
    ema: EMAConfig = MISSING

    def __post_init__(self):
        super().__post_init__()
        check_gan_loss(self.loss, self.discriminator.norm, self.gp_weight)
        positive(self.n_critic, "n_critic")


class GAN(Family):
    config_class = GANConfig
    network_names = ("generator", "discriminator")

    def __init__(self, cfg: GANConfig, channels: int, image_size: int):
        super().__init__(cfg, channels, image_size)
        self.generator = build_decoder(cfg.net, channels, image_size, cfg.latent_dim)
        self.discriminator = build_encoder(cfg.net, channels, image_size, 1,
                                           cfg.discriminator.norm, cfg.discriminator.spectral_norm)
        self.generator_ema = ema_copy(self.generator) if cfg.ema.enabled else None
        self.phases = [Phase("discriminator", ("discriminator",)),
                       Phase("generator", ("generator",), interval=cfg.n_critic)]

    def fake(self, n: int) -> torch.Tensor:
        return self.to_pixels(self.generator(self.sample_latent(n)))

    def phase_losses(self, phase, x, step):
        loss_kind = self.cfg.loss
        if phase == "discriminator":
            with torch.no_grad():
                fake = self.fake(x.shape[0])
            real_logits, fake_logits = self.discriminator(x), self.discriminator(fake)
            loss = discriminator_loss(loss_kind, real_logits, fake_logits)
            acc_real, acc_fake = real_fake_accuracy(loss_kind, real_logits, fake_logits)
            logs = {"d": loss, "acc/d_real": acc_real, "acc/d_fake": acc_fake}
            if loss_kind == "wgan-gp":
                penalty = gradient_penalty(self.discriminator, x, fake)
                loss = loss + self.cfg.gp_weight * penalty
                logs["gp"] = penalty
            return {"discriminator": loss}, logs
        loss = generator_loss(loss_kind, self.discriminator(self.fake(x.shape[0])))
        return {"generator": loss}, {"g": loss}

    def after_phase(self, phase, step):
        if phase == "generator" and self.generator_ema is not None:
            decay = self.cfg.ema.decay if step >= self.cfg.ema.start_step else 0.0
            ema_update(self.generator_ema, self.generator, decay)

    @torch.no_grad()
    def evaluate(self, x):
        """D on held-out real images: ``eval/d_acc_real`` well below the training ``acc/d_real``
        means D memorises the training images."""
        real_logits, fake_logits = self.discriminator(x), self.discriminator(self.fake(x.shape[0]))
        acc_real, acc_fake = real_fake_accuracy(self.cfg.loss, real_logits, fake_logits)
        return {"d": discriminator_loss(self.cfg.loss, real_logits, fake_logits),
                "d_acc_real": acc_real, "d_acc_fake": acc_fake}

    @torch.no_grad()
    def generate(self, z):
        net = self.generator_ema if self.generator_ema is not None else self.generator
        return self.to_pixels(net(z))


FAMILY = GAN
