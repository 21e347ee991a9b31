"""Semi-supervised adversarial autoencoder (Makhzani et al. 2015, "Adversarial Autoencoders",
section 5, Fig. 8).

    encoder q(y, z | x):  y = softmax(E_y(x)), a categorical code over the K classes
                          z = E_z(x), the style code (deterministic)
    decoder p(x | y, z):  reads [y, z]
    reconstruction:  E, Dec <- -log p(x | Dec(y, z))                 every image
    regularisation:  D      <- L_D(D_y(one-hot draws of Cat(K)), D_y(y)) + L_D(D_z(N(0, I) draws), D_z(z))
                     E      <- adversarial_weight * (L_G(D_y(y)) + L_G(D_z(z)))
    classification:  E      <- classification_weight * CE(E_y(x), label)    labelled images only

With ``input_noise`` > 0 the encoder reads x + N(0, input_noise^2) in all three training phases
(the decoder still reconstructs the clean x: a denoising autoencoder, Vincent et al. 2008), a
regulariser for a classifier that otherwise memorises its few labelled images; held-out
images are encoded clean. Off by default, the paper's model; what it does with 100 and 1000
labels: docs/results.md#semi-supervised-aae-against-the-paper.

The three phases run in this order on every batch, as in the paper. Labelled images come
from ``dataset.labelled`` (``vaegan_runner/data/labelled.py``): every batch is unlabelled
images (label ``UNLABELLED``) followed by images of the labelled subset; without it, every
image is labelled. A held-out image is classified by the argmax of y (``classify``, the
``classifier_error`` metric); samples decode z ~ N(0, I) with a one-hot class, so the model is
class-conditional by construction (``model.conditional`` stays true).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from ..config.checks import non_negative, positive, require
from ..data.labelled import UNLABELLED
from .aae import CodeDiscriminatorConfig, check_reconstruction, reconstruction_error
from .adversarial import AdversarialConfig, discriminator_terms
from .base import FAMILIES, Family, Phase
from .conditioning import one_hot
from .losses import generator_loss, pixel_mse
from .nets import build_decoder, build_encoder, vector_mlp


@dataclass
class SemiSupervisedAAEConfig(AdversarialConfig):
    reconstruction: str = MISSING  # bernoulli (pixel_range=unit) | mse
    adversarial_weight: float = MISSING  # weight of the encoder's fool-both-discriminators loss
    classification_weight: float = MISSING  # weight of the cross-entropy on labelled images
    input_noise: float = MISSING  # std of the Gaussian noise on the encoder's input while training (pixel units)
    discriminator: CodeDiscriminatorConfig = MISSING  # each of D_y and D_z

    def __post_init__(self):
        super().__post_init__()
        require(
            self.conditional,
            "conditional",
            "the semi-supervised AAE's decoder always reads a class (its categorical code): keep it true",
        )
        require(
            self.loss != "wgan-gp",
            "loss",
            "the codes' discriminators take no gradient penalty here: use nonsaturating, hinge or lsgan",
        )
        check_reconstruction(self)
        positive(self.adversarial_weight, "adversarial_weight")
        non_negative(self.classification_weight, "classification_weight")
        non_negative(self.input_noise, "input_noise")

    def discriminator_norm(self) -> str:
        return "none"  # the MLPs on codes have no normalisation layers


class CodeDiscriminators(nn.Module):
    """D_y on categorical codes and D_z on style codes: two MLPs, one optimizer."""

    def __init__(self, num_classes: int, latent_dim: int, cfg: CodeDiscriminatorConfig):
        super().__init__()
        self.category = vector_mlp([num_classes, *cfg.hidden, 1], spectral_norm=cfg.spectral_norm)
        self.style = vector_mlp([latent_dim, *cfg.hidden, 1], spectral_norm=cfg.spectral_norm)


@FAMILIES.register("ssaae")
class SemiSupervisedAAE(Family):
    cfg: SemiSupervisedAAEConfig
    num_classes: int  # conditional_only: Family.__init__ refuses a conditional model without classes
    config_class = SemiSupervisedAAEConfig
    network_names = ("encoder", "decoder", "discriminator")
    has_classifier = True
    conditional_only = True  # the decoder always reads a class: its categorical code
    label_networks = ()  # the label is only the cross-entropy's target
    added_keys = {"input_noise": 0.0}  # clean inputs, as before the option

    def __init__(self, cfg: SemiSupervisedAAEConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__(cfg, channels, image_size, num_classes)
        k = self.num_classes
        self.encoder = build_encoder(cfg.net, channels, image_size, k + cfg.latent_dim)
        self.decoder = build_decoder(cfg.net, channels, image_size, k + cfg.latent_dim)
        self.discriminator = CodeDiscriminators(k, cfg.latent_dim, cfg.discriminator)
        self.phases = [
            Phase("reconstruction", ("encoder", "decoder"), self.reconstruction_losses),
            Phase("regularization", ("encoder", "discriminator"), self.regularization_losses),
            Phase("classification", ("encoder",), self.classification_losses),
        ]

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits [B, K], style z [B, latent_dim])."""
        return self.encoder(x).split([self.num_classes, self.latent_dim], dim=1)

    def training_codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``codes`` of x corrupted by ``input_noise`` (the training phases' view of an image)."""
        if self.cfg.input_noise > 0:
            x = x + self.cfg.input_noise * torch.randn_like(x)
        return self.codes(x)

    def decode(self, y_probs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits for categorical codes (probabilities or one-hot) and styles."""
        return self.decoder(torch.cat([y_probs, z], dim=1))

    def reconstruction_error(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return reconstruction_error(self, logits, x)

    def reconstruction_losses(self, x, y, step):
        class_logits, z = self.training_codes(x)
        loss = self.reconstruction_error(self.decode(class_logits.softmax(dim=1), z), x).mean()
        return {"encoder": loss, "decoder": loss}, {"recon": loss}

    def regularization_losses(self, x, y, step):
        class_logits, z = self.training_codes(x)
        y_code, n = class_logits.softmax(dim=1), x.shape[0]
        y_prior = one_hot(torch.randint(self.num_classes, (n,), device=x.device), self.num_classes).to(z.dtype)
        z_prior = self.sample_latent(n)
        d = self.discriminator
        l_cat, cat_logs = discriminator_terms(self.cfg, d.category(y_prior), fake_cat := d.category(y_code))
        l_style, style_logs = discriminator_terms(self.cfg, d.style(z_prior), fake_style := d.style(z))
        l_enc = generator_loss(self.cfg.loss, fake_cat) + generator_loss(self.cfg.loss, fake_style)
        logs = {
            "d_category": cat_logs["d"],
            "d_style": style_logs["d"],
            "g": l_enc,
            "acc/d_category_fake": cat_logs["acc/d_fake"],
            "acc/d_style_fake": style_logs["acc/d_fake"],
        }
        return {"encoder": self.cfg.adversarial_weight * l_enc, "discriminator": l_cat + l_style}, logs

    def classification_losses(self, x, y, step):
        """Cross-entropy of the categorical code on the labelled images of the batch (no host
        sync: a masked mean)."""
        class_logits, _ = self.training_codes(x)
        labelled = (y != UNLABELLED).to(class_logits.dtype)
        ce = F.cross_entropy(class_logits, y.clamp(min=0), reduction="none")
        count = labelled.sum().clamp(min=1.0)
        loss = (ce * labelled).sum() / count
        correct = ((class_logits.argmax(dim=1) == y).to(ce.dtype) * labelled).sum() / count
        return {"encoder": self.cfg.classification_weight * loss}, {"class_ce": loss, "acc/train_class": correct}

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of the categorical code."""
        return self.codes(x)[0]

    @torch.no_grad()
    def evaluate(self, x, y):
        """Held-out reconstruction and classification error (labels of held-out images)."""
        class_logits, z = self.codes(x)
        logits = self.decode(class_logits.softmax(dim=1), z)
        return {
            "recon": self.reconstruction_error(logits, x).mean(),
            "recon_mse": pixel_mse(self.activate(logits), x, self.pixel_range),
            "class_error": (class_logits.argmax(dim=1) != y).float().mean(),
        }

    @torch.no_grad()
    def encode(self, x, y=None):
        """The style code z (the class lives in ``classify``)."""
        return self.codes(x)[1]

    @torch.no_grad()
    def reconstruct(self, x, y=None):
        """Decoded from the encoder's own class probabilities and style (labels not read)."""
        class_logits, z = self.codes(x)
        return self.activate(self.decode(class_logits.softmax(dim=1), z))

    @torch.no_grad()
    def generate(self, z, y=None):
        labels = self.labels_or_balanced(z.shape[0], y)
        assert labels is not None  # conditional_only: there are always labels
        return self.activate(self.decode(one_hot(labels, self.num_classes).to(z.dtype), z))
