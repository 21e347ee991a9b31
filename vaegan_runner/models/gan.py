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

InfoGAN (Chen et al. 2016), for unlabelled training (``info_codes`` = K > 0): a uniform
categorical code c of K categories joins z as a one-hot, x = G(z, c), and a head Q on D's last
features must recover c from the fakes. H(c) minus Q's cross-entropy is a variational lower
bound on the mutual information I(c; G(z, c)), so minimising the cross-entropy in G makes each
category a distinct kind of image, found without labels:

    D, Q <- ... + lambda * CE(Q(G(z, c)), c)
    G    <- ... + lambda * CE(Q(G(z, c)), c)       lambda = ``info_weight``

The code is part of the latent vector (``sample_latent`` draws [z, one_hot(c)]), so the fixed
sample grid and ``vaegan-sample`` draw it with z; ``code_grid`` shows a row per category.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from ..config.checks import non_negative, positive, require
from .adversarial import AdversarialConfig, check_auxiliary_weight, discriminator_terms
from .base import FAMILIES, Family, Phase
from .conditioning import decoder_for, discriminator_for, one_hot, run
from .ema import ema_copy, ema_update
from .losses import generator_loss, gradient_penalty
from .nets import DiscriminatorConfig, EncoderBody


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
    info_codes: int = MISSING  # InfoGAN: categories of the categorical code beside z (0: off)
    info_weight: float = MISSING  # InfoGAN: weight of Q's cross-entropy in D's and G's losses
    discriminator: DiscriminatorConfig = MISSING
    ema: EMAConfig = MISSING

    def __post_init__(self):
        super().__post_init__()
        positive(self.n_critic, "n_critic")
        check_auxiliary_weight(self)
        require(
            self.info_codes == 0 or self.info_codes >= 2,
            "info_codes",
            f"is the number of categories of InfoGAN's code: 0 (off) or at least 2, got {self.info_codes}",
        )
        non_negative(self.info_weight, "info_weight")
        require(
            self.info_codes != 0 or self.info_weight == 1.0,
            "info_weight",
            f"weights InfoGAN's code loss, which is off (model.info_codes=0): set model.info_codes to the "
            f"number of categories (2 or more), or leave model.info_weight at 1 (got {self.info_weight})",
        )
        require(
            self.info_codes == 0 or not self.conditional,
            "info_codes",
            "InfoGAN's code is for unlabelled training; a class-conditional GAN already gives G the "
            f"label: set model.info_codes=0 or model.conditional=false (got {self.info_codes})",
        )


class CodeDiscriminator(nn.Module):
    """InfoGAN's D and Q in one network: D's body, its real/fake head, and a linear head Q on the
    same last features that predicts the categorical code (``codes(x)``: both from one pass)."""

    def __init__(self, body: EncoderBody, info_codes: int):
        super().__init__()
        self.body = body
        self.code_head = nn.Linear(body.feature_dim, info_codes)

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real/fake logits [B, 1], code logits [B, info_codes])."""
        last = self.body.features(x)[-1].flatten(1)
        return self.body.head(last), self.code_head(last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@FAMILIES.register("gan")
class GAN(Family):
    cfg: GANConfig
    config_class = GANConfig
    network_names = ("generator", "discriminator")
    label_networks = ("generator", "discriminator")  # G(z,y), projection D(x,y)
    added_keys = {"auxiliary_weight": 0.0, "info_codes": 0, "info_weight": 1.0}

    def __init__(self, cfg: GANConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__(cfg, channels, image_size, num_classes)
        k = cfg.info_codes
        self.generator = decoder_for(cfg.net, channels, image_size, cfg.latent_dim + k, self.num_classes)
        d = cfg.discriminator
        self.discriminator = discriminator_for(
            cfg.net, channels, image_size, d.norm, d.spectral_norm, self.num_classes, cfg.auxiliary_weight > 0
        )
        if k:
            self.discriminator = CodeDiscriminator(self.discriminator, k)
        self.generator_ema = ema_copy(self.generator) if cfg.ema.enabled else None
        self.phases = [
            Phase("discriminator", ("discriminator",), self.discriminator_losses),
            Phase("generator", ("generator",), self.generator_losses, interval=cfg.n_critic, after=self.update_ema),
        ]

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of z ~ N(0, I), followed with InfoGAN by one-hot codes c ~ Uniform{0..K-1}."""
        z = super().sample_latent(n, generator)
        if not self.cfg.info_codes:
            return z
        c = torch.randint(self.cfg.info_codes, (n,), generator=generator, device=self.device)
        return torch.cat([z, one_hot(c, self.cfg.info_codes).to(z.dtype)], dim=1)

    def fake(self, y: torch.Tensor) -> torch.Tensor:
        """G(z) for one z per label (the labels are read only when conditional)."""
        return self.fake_and_codes(y)[0]

    def fake_and_codes(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(G(z), the categories of InfoGAN's code in z, or None without one)."""
        z = self.sample_latent(y.shape[0])
        codes = z[:, self.latent_dim :].argmax(1) if self.cfg.info_codes else None
        return self.activate(run(self.generator, z, y)), codes

    @property
    def code_categories(self) -> int:
        return self.cfg.info_codes

    @torch.no_grad()
    def code_grid(self, z: torch.Tensor) -> torch.Tensor | None:
        k = self.cfg.info_codes
        if not k:
            return None
        rows = z.repeat(k, 1)
        rows[:, self.latent_dim :] = one_hot(torch.arange(k, device=z.device).repeat_interleave(z.shape[0]), k)
        return self.generate(rows)

    def info_terms(self, fake: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(D's logits on ``fake``, InfoGAN's logs: ``info``, Q's cross-entropy on the codes, and
        ``acc/info``, the share of fakes whose code Q recovers)."""
        logits, predicted = self.discriminator.codes(fake)
        ce = F.cross_entropy(predicted, codes)
        return logits, {"info": ce, "acc/info": (predicted.argmax(1) == codes).float().mean()}

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
            fake, codes = self.fake_and_codes(y)
        real_logits, real_class_loss = self.auxiliary_loss(x, y)
        info: dict[str, torch.Tensor] = {}
        if codes is not None:
            fake_logits, info = self.info_terms(fake, codes)
        else:
            fake_logits = self.d_logits(fake, y)
        loss, logs = discriminator_terms(
            self.cfg,
            real_logits,
            fake_logits,
            penalty=lambda: gradient_penalty(lambda v: self.d_logits(v, y), x, fake),
        )
        if self.cfg.auxiliary_weight:
            loss, logs["d_class"] = loss + real_class_loss, real_class_loss
        if info:
            loss = loss + self.cfg.info_weight * info["info"]
        return {"discriminator": loss}, {**logs, **info}

    def generator_losses(self, x, y, step):
        fake, codes = self.fake_and_codes(y)
        if codes is not None:
            fake_logits, info = self.info_terms(fake, codes)
            loss = generator_loss(self.cfg.loss, fake_logits)
            return {"generator": loss + self.cfg.info_weight * info["info"]}, {"g": loss, "g_info": info["info"]}
        fake_logits, fake_class_loss = self.auxiliary_loss(fake, y)
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
