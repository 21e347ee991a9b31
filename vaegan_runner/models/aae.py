"""Adversarial autoencoder (Makhzani et al. 2015, "Adversarial Autoencoders").

    z = E(x)  (deterministic), or z ~ q(z|x) = N(mu(x), sigma^2(x)) reparameterised
    reconstruction:  E, Dec <- -log p(x | Dec(z))  (Bernoulli, or squared error)
    regularisation:  D   <- L_D(D(z'), D(z)),  z' ~ p(z) "real", the codes z "fake"
                     E   <- adversarial_weight * L_G(D(z))

D is an MLP on codes, so q(z) = E_x q(z|x) is pushed onto the prior p(z) (``model.prior``,
see ``vaegan_runner/models/fixed_priors.py``) without a closed-form KL; samples decode prior draws.

Class-conditional (``model.conditional=true``): the paper's supervised AAE (section 4, Fig. 6):
the one-hot label joins z at the decoder's input and the encoder never sees it, so the code
should hold the style only and decoding one code with every label transfers its style. Nothing
in the paper's objective removes class information the code already holds, though (a held-out
code decoded with another label can still show its own class:
docs/results.md#the-aaes-code-discriminator). So by default D also reads the label
(``model.label_to_discriminator``): D(z, y) against prior draws paired with the same labels,
and the encoder is pushed to match the prior within every class, q(z | y) = p(z), i.e. to make
the code independent of the label (the adversarial independence of Fader networks, Lample et
al. 2017, done by the AAE's own discriminator). ``label_to_discriminator=false`` gives the
paper's D(z).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from omegaconf import MISSING
from torch import nn

from ..config.checks import one_of, positive, require
from .adversarial import AdversarialConfig, discriminator_terms
from .base import FAMILIES, Family, Phase
from .conditioning import LabelledCodeDiscriminator, decoder_for, run
from .encoders import ENCODER_TYPES, SwitchableEncoder
from .fixed_priors import check_prior_settings, prior_options, sample_prior
from .losses import bernoulli_nll, generator_loss, gradient_penalty, pixel_mse
from .nets import build_encoder, vector_mlp

RECONSTRUCTIONS = ("bernoulli", "mse")


def check_reconstruction(cfg) -> None:
    """``cfg.reconstruction`` is known and fits ``cfg.pixel_range`` (the AAE and the ssaae)."""
    one_of(cfg.reconstruction, RECONSTRUCTIONS, "reconstruction")
    require(
        cfg.reconstruction != "bernoulli" or cfg.pixel_range == "unit",
        "reconstruction",
        "a Bernoulli decoder models pixels in [0,1]: use model.pixel_range=unit, "
        "or model.reconstruction=mse for pixels in [-1,1]",
    )


class ReconstructionSettings(Protocol):
    @property
    def reconstruction(self) -> str: ...


class Reconstructs(Protocol):
    """What ``reconstruction_error`` reads of a family (the AAE and the ssaae)."""

    @property
    def cfg(self) -> ReconstructionSettings: ...

    def activate(self, logits: torch.Tensor) -> torch.Tensor: ...


def reconstruction_error(family: Reconstructs, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per image: -log p(x|code) in nats (bernoulli), or the summed squared error (mse)."""
    if family.cfg.reconstruction == "bernoulli":
        return bernoulli_nll(logits, x)
    return (family.activate(logits) - x).pow(2).flatten(1).sum(1)


@dataclass
class CodeDiscriminatorConfig:
    hidden: list[int] = MISSING  # hidden layer sizes of the MLP on codes
    spectral_norm: bool = MISSING

    def __post_init__(self):
        require(
            len(self.hidden) > 0 and all(h > 0 for h in self.hidden),
            "discriminator.hidden",
            f"needs at least one positive layer size, got {list(self.hidden)}",
        )


@dataclass
class AAEConfig(AdversarialConfig):
    encoder_type: str = MISSING  # deterministic | gaussian
    reconstruction: str = MISSING  # bernoulli (pixel_range=unit) | mse
    prior: str = MISSING  # gaussian | uniform | mixture
    prior_components: int = MISSING  # mixture: number of Gaussians on the circle
    prior_radius: float = MISSING  # mixture: radius of the circle of means
    prior_std: float = MISSING  # mixture: standard deviation of each component
    adversarial_weight: float = MISSING  # weight of the encoder's fool-the-discriminator loss
    label_to_discriminator: bool = MISSING  # conditional: D(z, y), so each class's codes match the prior
    discriminator: CodeDiscriminatorConfig = MISSING

    def __post_init__(self):
        super().__post_init__()
        one_of(self.encoder_type, ENCODER_TYPES, "encoder_type")
        check_reconstruction(self)
        check_prior_settings(self)
        positive(self.adversarial_weight, "adversarial_weight")
        require(
            not self.label_to_discriminator or self.conditional,
            "label_to_discriminator",
            "the code discriminator can only read labels the model is trained with: set "
            "model.conditional=true, or model.label_to_discriminator=false",
        )

    def discriminator_norm(self) -> str:
        return "none"  # the MLP on codes has no normalisation layers


@FAMILIES.register("aae")
class AAE(SwitchableEncoder, Family):
    cfg: AAEConfig
    config_class = AAEConfig
    network_names = ("encoder", "decoder", "discriminator")
    label_networks = ("decoder", "discriminator")  # the supervised AAE; D(z, y) pushes the class out of the code
    added_keys = {"label_to_discriminator": False}  # the paper's D(z), as before the option

    def __init__(self, cfg: AAEConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__(cfg, channels, image_size, num_classes)
        self.encoder = build_encoder(cfg.net, channels, image_size, self.encoder_out_dim())
        self.decoder = decoder_for(cfg.net, channels, image_size, cfg.latent_dim, self.num_classes)
        label_classes = self.num_classes if cfg.label_to_discriminator else None  # the classes D(z, y) reads
        self.discriminator: nn.Module = vector_mlp(
            [cfg.latent_dim + (label_classes if label_classes is not None else 0), *cfg.discriminator.hidden, 1],
            spectral_norm=cfg.discriminator.spectral_norm,
        )
        if label_classes is not None:
            self.discriminator = LabelledCodeDiscriminator(self.discriminator, label_classes)
        self.prior_options = prior_options(cfg)
        self.phases = [
            Phase("reconstruction", ("encoder", "decoder"), self.reconstruction_losses),
            Phase("regularization", ("encoder", "discriminator"), self.regularization_losses),
        ]

    def sample_latent(self, n, generator=None):
        return sample_prior(
            self.cfg.prior, n, self.latent_dim, generator=generator, device=self.device, **self.prior_options
        )

    def reconstruction_error(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return reconstruction_error(self, logits, x)

    def reconstruction_losses(self, x, y, step):
        loss = self.reconstruction_error(run(self.decoder, self.code(x), y), x).mean()
        return {"encoder": loss, "decoder": loss}, {"recon": loss}

    def regularization_losses(self, x, y, step):
        z = self.code(x)
        prior = self.sample_latent(x.shape[0])

        def critic(codes):  # prior draws take the batch's labels: D(z, y) with label_to_discriminator
            return run(self.discriminator, codes, y)

        real_logits, fake_logits = critic(prior), critic(z)
        # Two tensors: backward_split sends l_dis into D only and l_enc into E only.
        l_dis, logs = discriminator_terms(
            self.cfg, real_logits, fake_logits, penalty=lambda: gradient_penalty(critic, prior, z)
        )
        l_enc = generator_loss(self.cfg.loss, fake_logits)
        logs = {"d": logs.pop("d"), "g": l_enc, **logs}
        return {"encoder": self.cfg.adversarial_weight * l_enc, "discriminator": l_dis}, logs

    @torch.no_grad()
    def evaluate(self, x, y):
        """Held-out reconstruction, and how well D still tells held-out codes from the prior
        (``d_acc_real``: prior draws called real; ``d_acc_fake``: codes called fake)."""
        z = self.code(x)
        logits = run(self.decoder, z, y)
        real_logits = run(self.discriminator, self.sample_latent(x.shape[0]), y)
        fake_logits = run(self.discriminator, z, y)
        _, logs = discriminator_terms(self.cfg, real_logits, fake_logits)
        return {
            "recon": self.reconstruction_error(logits, x).mean(),
            "recon_mse": pixel_mse(self.activate(logits), x, self.pixel_range),
            "d_acc_real": logs["acc/d_real"],
            "d_acc_fake": logs["acc/d_fake"],
        }

    @torch.no_grad()
    def generate(self, z, y=None):
        return self.activate(run(self.decoder, z, self.labels_or_balanced(z.shape[0], y)))
