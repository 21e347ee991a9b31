"""BiGAN / ALI (Donahue et al. 2017, "Adversarial Feature Learning"; Dumoulin et al. 2017,
"Adversarially Learned Inference").

    G: z -> x,   E: x -> z (deterministic: BiGAN; Gaussian, reparameterised: ALI),   z ~ N(0, I)
    D(x, z) tells encoder pairs (x, E(x)) ("real") from generator pairs (G(z), z) ("fake")
    D    <- L_D(D(x, E(x)), D(G(z), z))        [+ gp_weight * gradient penalty for wgan-gp]
    G, E <- L_D(D(G(z), z), D(x, E(x)))        the same loss with the labels swapped, every n_critic steps

At the optimum the two joint distributions match, so E inverts G; nothing trains the
reconstruction G(E(x)) directly, which is why its quality is worth watching.

Class-conditional (``model.conditional=true``): G(z, y) takes the one-hot label with z, and the
label joins x and z in D's joint head, D(x, z, y) (the conditional ALI of Dumoulin et al. 2017,
section 4.4), as a projection on the head's last hidden layer h (Miyato & Koyama 2018):
D(x, z, y) = out(h) + <embed(y), h>; E(x) stays label-free, so at the optimum it inverts G for
every class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from omegaconf import MISSING
from torch import nn

from ..config.checks import one_of, positive, require
from .adversarial import AdversarialConfig, discriminator_terms
from .base import FAMILIES, Family, Phase
from .conditioning import decoder_for, run
from .encoders import ENCODER_TYPES, SwitchableEncoder
from .losses import discriminator_loss, pixel_mse
from .nets import DiscriminatorConfig, NetConfig, build_encoder, vector_mlp


@dataclass
class JointDiscriminatorConfig(DiscriminatorConfig):
    hidden: int = MISSING  # width of the z branch and of the joint head
    dropout: float = MISSING  # dropout in the z branch and the joint head (ALI uses 0.2)

    def __post_init__(self):
        super().__post_init__()
        positive(self.hidden, "discriminator.hidden")
        require(0.0 <= self.dropout < 1.0, "discriminator.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass
class BiGANConfig(AdversarialConfig):
    encoder_type: str = MISSING  # deterministic (BiGAN) | gaussian (ALI)
    n_critic: int = MISSING  # discriminator steps per generator/encoder step
    discriminator: JointDiscriminatorConfig = MISSING

    def __post_init__(self):
        super().__post_init__()
        one_of(self.encoder_type, ENCODER_TYPES, "encoder_type")
        positive(self.n_critic, "n_critic")


class JointDiscriminator(nn.Module):
    """D(x, z): a conv (or MLP) branch on x and an MLP branch on z, joined by an MLP head; with
    ``num_classes``, D(x, z, y): a label embedding projected on the head's last hidden layer."""

    def __init__(
        self,
        net: NetConfig,
        cfg: JointDiscriminatorConfig,
        channels: int,
        image_size: int,
        latent_dim: int,
        num_classes: int | None = None,
    ):
        super().__init__()
        h, sn = cfg.hidden, cfg.spectral_norm
        self.num_classes = num_classes
        self.x_branch = build_encoder(net, channels, image_size, h, cfg.norm, sn)
        self.z_branch = vector_mlp([latent_dim, h, h], cfg.dropout, sn)
        self.joint = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout), vector_mlp([2 * h, h, 1], cfg.dropout, sn)
        )
        if num_classes:
            embed = nn.Embedding(num_classes, h)
            nn.init.normal_(embed.weight, 0.0, 0.02)
            self.embed = nn.utils.parametrizations.spectral_norm(embed) if sn else embed

    def forward(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        joined = torch.cat([self.x_branch(x), self.z_branch(z)], dim=1)
        if not self.num_classes:
            return self.joint(joined)
        if y is None:
            raise ValueError(f"{type(self).__name__} is class-conditional: give the labels")
        *hidden_layers, out = cast(nn.Sequential, self.joint[-1])  # vector_mlp's layers
        h = joined
        for layer in [*self.joint[:-1], *hidden_layers]:
            h = layer(h)
        return out(h) + (self.embed(y.long()) * h).sum(dim=1, keepdim=True)


@FAMILIES.register("bigan")
class BiGAN(SwitchableEncoder, Family):
    cfg: BiGANConfig
    config_class = BiGANConfig
    network_names = ("generator", "encoder", "discriminator")
    label_networks = ("generator", "discriminator")  # G(z,y), D(x,z,y); E(x) label-free

    def __init__(self, cfg: BiGANConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__(cfg, channels, image_size, num_classes)
        self.generator = decoder_for(cfg.net, channels, image_size, cfg.latent_dim, self.num_classes)
        self.encoder = build_encoder(cfg.net, channels, image_size, self.encoder_out_dim())
        self.discriminator = JointDiscriminator(
            cfg.net, cfg.discriminator, channels, image_size, cfg.latent_dim, self.num_classes
        )
        self.phases = [
            Phase("discriminator", ("discriminator",), self.discriminator_losses),
            Phase("generator", ("generator", "encoder"), self.generator_encoder_losses, interval=cfg.n_critic),
        ]

    def pairs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, E(x)) and (G(z), z) for a batch of real images x (fakes drawn for their labels y,
        which only a conditional G reads)."""
        z = self.sample_latent(x.shape[0])
        return x, self.code(x), self.activate(run(self.generator, z, y)), z

    def discriminator_losses(self, x, y, step):
        with torch.no_grad():
            x, x_code, fake, z = self.pairs(x, y)
        loss, logs = discriminator_terms(
            self.cfg,
            self.discriminator(x, x_code, y),
            self.discriminator(fake, z, y),
            penalty=lambda: self.joint_gradient_penalty(x, x_code, fake, z, y),
        )
        return {"discriminator": loss}, logs

    def generator_encoder_losses(self, x, y, step):
        x, x_code, fake, z = self.pairs(x, y)
        # Swapped labels: G and E minimise D's own loss with real and fake exchanged. It is one
        # tensor for both, so the loop back-propagates it once into G's and E's parameters.
        loss = discriminator_loss(self.cfg.loss, self.discriminator(fake, z, y), self.discriminator(x, x_code, y))
        return {"generator": loss, "encoder": loss}, {"ge": loss}

    def joint_gradient_penalty(self, x, x_code, fake, z, y) -> torch.Tensor:
        """WGAN-GP on random interpolates of the pairs, the gradient taken w.r.t. (x, z) jointly."""
        n = x.shape[0]
        alpha = torch.rand(n, 1, device=x.device, dtype=x.dtype)
        x_hat = (alpha.view(n, 1, 1, 1) * x + (1 - alpha.view(n, 1, 1, 1)) * fake).requires_grad_(True)
        z_hat = (alpha * x_code + (1 - alpha) * z).requires_grad_(True)
        grads = torch.autograd.grad(self.discriminator(x_hat, z_hat, y).sum(), (x_hat, z_hat), create_graph=True)
        norm = torch.cat([g.flatten(1) for g in grads], dim=1).norm(2, dim=1)
        return ((norm - 1.0) ** 2).mean()

    @torch.no_grad()
    def evaluate(self, x, y):
        """D on held-out pairs, and how close G(E(x)) comes to x ([0,1] scale, per pixel),
        a check that E learned to invert G though nothing trains it to."""
        x, x_code, fake, z = self.pairs(x, y)
        _, logs = discriminator_terms(self.cfg, self.discriminator(x, x_code, y), self.discriminator(fake, z, y))
        reconstruction = self.reconstruct(x, y)
        assert reconstruction is not None  # BiGAN has an encoder
        return {
            "d": logs["d"],
            "d_acc_real": logs["acc/d_real"],
            "d_acc_fake": logs["acc/d_fake"],
            "recon_mse": pixel_mse(reconstruction, x, self.pixel_range),
        }

    @torch.no_grad()
    def generate(self, z, y=None):
        return self.activate(run(self.generator, z, self.labels_or_balanced(z.shape[0], y)))
