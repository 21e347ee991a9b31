"""The part every adversarial family (GAN, VAE-GAN, AAE, BiGAN) shares: the discriminator's game.

    D <- L_D(D(real), D(fake))   [+ gp_weight * gradient penalty, for wgan-gp]

with L the variant of ``model.loss`` (nonsaturating, hinge, lsgan, wgan-gp; see
``vaegan_runner/models/losses.py``). A family says what its real and fake inputs are, which of its
networks try to fool D, and what its own ``discriminator`` config block holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from omegaconf import MISSING

from ..config.checks import non_negative, one_of, require
from .base import FamilyConfig
from .losses import GAN_LOSSES, discriminator_loss, real_fake_accuracy


@dataclass
class AdversarialConfig(FamilyConfig):
    """Keys every adversarial family has; each adds its own, among them ``discriminator``."""

    loss: str = MISSING  # nonsaturating | hinge | lsgan | wgan-gp
    gp_weight: float = MISSING  # gradient penalty weight (wgan-gp only)

    def __post_init__(self):
        super().__post_init__()
        one_of(self.loss, GAN_LOSSES, "loss")
        non_negative(self.gp_weight, "gp_weight")
        require(
            self.loss != "wgan-gp" or self.discriminator_norm() != "batch",
            "discriminator.norm",
            "wgan-gp penalises the gradient of each sample on its own, which batch norm mixes "
            "across the batch: use model.discriminator.norm=layer or none",
        )

    def discriminator_norm(self) -> str:
        """The normalisation inside D (``model.discriminator.norm``)."""
        return self.discriminator.norm  # type: ignore[attr-defined]  # each subclass declares its discriminator group


def discriminator_terms(
    cfg: AdversarialConfig,
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    penalty: Callable[[], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """D's loss from its logits on real and fake inputs, and the scalars to log: ``d`` (the loss
    without penalty), ``acc/d_real`` and ``acc/d_fake``. For wgan-gp, ``penalty()`` (if given)
    is added with weight ``gp_weight`` and logged as ``gp``."""
    loss = discriminator_loss(cfg.loss, real_logits, fake_logits)
    acc_real, acc_fake = real_fake_accuracy(cfg.loss, real_logits, fake_logits)
    logs = {"d": loss, "acc/d_real": acc_real, "acc/d_fake": acc_fake}
    if cfg.loss == "wgan-gp" and penalty is not None:
        logs["gp"] = penalty()
        loss = loss + cfg.gp_weight * logs["gp"]
    return loss, logs


class AuxiliaryWeighted(Protocol):
    """The keys ``check_auxiliary_weight`` reads (of the GAN's and the VAE-GAN's configs)."""

    @property
    def auxiliary_weight(self) -> float: ...

    @property
    def conditional(self) -> bool: ...


def check_auxiliary_weight(cfg: AuxiliaryWeighted) -> None:
    """``model.auxiliary_weight``, ACGAN's class loss (GAN, VAE-GAN): at least 0, and above 0
    only for a class-conditional model, which has labels to draw for."""
    non_negative(cfg.auxiliary_weight, "auxiliary_weight")
    require(
        cfg.auxiliary_weight == 0 or cfg.conditional,
        "auxiliary_weight",
        f"ACGAN's class loss needs labels to draw for: set model.conditional=true, or "
        f"model.auxiliary_weight=0 (got {cfg.auxiliary_weight})",
    )
