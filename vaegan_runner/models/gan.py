"""Generative adversarial network (Goodfellow et al. 2014; DCGAN networks, Radford et al. 2016).

    D <- min  L_D(D(x), D(G(z)))  [+ gp_weight * gradient penalty for wgan-gp]
    G <- min  L_G(D(G(z)))        every n_critic steps

with L the loss variant of ``model.loss``: nonsaturating (default), hinge, lsgan, wgan-gp.
Optionally spectral norm in D, and an exponential moving average of G used for samples.

Class-conditional (``model.conditional=true``): G(z, y) takes the one-hot label with z
(Mirza & Osindero 2014), and D(x, y) is the projection discriminator (Miyato & Koyama 2018);
fakes are drawn for the labels of the real batch, so both see the data's class frequencies.
With ``auxiliary_weight`` > 0, ACGAN's auxiliary classifier (Odena et al. 2017) joins D:

    D <- ... + w * CE(C(x), y)            C: a linear class head on D's last features
    G <- ... + w * CE(C(G(z, y)), y)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from ..config.checks import non_negative, positive, require
from .adversarial import AdversarialConfig, check_auxiliary_weight, discriminator_terms
from .base import FAMILIES, Family, Phase
from .conditioning import decoder_for, discriminator_for, run
from .ema import ema_copy, ema_update
from .losses import generator_loss, gradient_penalty
from .nets import DiscriminatorConfig


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
    auxiliary_weight: float = MISSING  # conditional: ACGAN's class loss in D and G (0: projection D alone)
    discriminator: DiscriminatorConfig = MISSING
    ema: EMAConfig = MISSING

    def __post_init__(self):
        super().__post_init__()
        positive(self.n_critic, "n_critic")
        check_auxiliary_weight(self)


@FAMILIES.register("gan")
class GAN(Family):
    config_class = GANConfig
    network_names = ("generator", "discriminator")

    def __init__(self, cfg: GANConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__(cfg, channels, image_size, num_classes)
        self.generator = decoder_for(cfg.net, channels, image_size, cfg.latent_dim, self.num_classes)
        d = cfg.discriminator
        self.discriminator = discriminator_for(
            cfg.net, channels, image_size, d.norm, d.spectral_norm, self.num_classes, cfg.auxiliary_weight > 0
        )
        self.generator_ema = ema_copy(self.generator) if cfg.ema.enabled else None
        self.phases = [
            Phase("discriminator", ("discriminator",), self.discriminator_losses),
            Phase("generator", ("generator",), self.generator_losses, interval=cfg.n_critic, after=self.update_ema),
        ]

    def fake(self, y: torch.Tensor) -> torch.Tensor:
        """G(z) for one z per label (the labels are read only when conditional)."""
        return self.activate(run(self.generator, self.sample_latent(y.shape[0]), y))

    def d_logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return run(self.discriminator, x, y)

    def auxiliary_loss(self, images: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(D's logit, w * CE of its class head on y) for ACGAN; the CE is 0 when it is off."""
        if not self.cfg.auxiliary_weight:
            return self.d_logits(images, y), images.new_zeros(())
        logits, classes = self.discriminator(images, y, with_classes=True)
        return logits, self.cfg.auxiliary_weight * F.cross_entropy(classes, y)

    def discriminator_losses(self, x, y, step):
        with torch.no_grad():
            fake = self.fake(y)
        real_logits, real_class_loss = self.auxiliary_loss(x, y)
        loss, logs = discriminator_terms(
            self.cfg,
            real_logits,
            self.d_logits(fake, y),
            penalty=lambda: gradient_penalty(lambda v: self.d_logits(v, y), x, fake),
        )
        if self.cfg.auxiliary_weight:
            loss, logs["d_class"] = loss + real_class_loss, real_class_loss
        return {"discriminator": loss}, logs

    def generator_losses(self, x, y, step):
        fake_logits, fake_class_loss = self.auxiliary_loss(self.fake(y), y)
        loss = generator_loss(self.cfg.loss, fake_logits)
        logs = {"g": loss, **({"g_class": fake_class_loss} if self.cfg.auxiliary_weight else {})}
        return {"generator": loss + fake_class_loss}, logs

    def update_ema(self, step):
        if self.generator_ema is not None:
            decay = self.cfg.ema.decay if step >= self.cfg.ema.start_step else 0.0
            ema_update(self.generator_ema, self.generator, decay)

    @torch.no_grad()
    def evaluate(self, x, y):
        """D on held-out real images: ``eval/d_acc_real`` well below the training ``acc/d_real``
        means D memorises the training images."""
        _, logs = discriminator_terms(self.cfg, self.d_logits(x, y), self.d_logits(self.fake(y), y))
        return {"d": logs["d"], "d_acc_real": logs["acc/d_real"], "d_acc_fake": logs["acc/d_fake"]}

    @torch.no_grad()
    def generate(self, z, y=None):
        net = self.generator_ema if self.generator_ema is not None else self.generator
        return self.activate(run(net, z, self.labels_or_balanced(z.shape[0], y)))
