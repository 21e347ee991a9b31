"""Loss terms as small pure functions. Per-image sums are in nats; batch means at the end.

GAN losses take raw discriminator logits. ``GAN_LOSSES`` lists the variants a config may
name (``model.loss``, checked by ``models/adversarial.py``); each family that has an
adversarial part uses ``discriminator_loss`` and ``generator_loss`` so the variant is chosen
in one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..registry import Registry


# ----------------------------------------------------------------------------- GAN
@dataclass(frozen=True)
class GanLoss:
    """A GAN loss variant: D's loss (real_logits, fake_logits), G's loss (fake_logits), and the
    logit that splits "real" from "fake" for the accuracy logs."""

    name: str
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]
    threshold: float = 0.0


GAN_LOSS_KINDS: Registry[GanLoss] = Registry("GAN loss", "loss", record=GanLoss)


@GAN_LOSS_KINDS.register("nonsaturating", generator=lambda fake: F.softplus(-fake).mean())
def _nonsaturating(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()


@GAN_LOSS_KINDS.register("hinge", generator=lambda fake: -fake.mean())
def _hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


@GAN_LOSS_KINDS.register("lsgan", generator=lambda fake: 0.5 * ((fake - 1.0) ** 2).mean(), threshold=0.5)
def _lsgan(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


@GAN_LOSS_KINDS.register("wgan-gp", generator=lambda fake: -fake.mean())
def _wgan_gp(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return fake.mean() - real.mean()  # + gp_weight * gradient_penalty, added by the family


GAN_LOSSES = GAN_LOSS_KINDS.names()


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Loss the discriminator minimises (gradient penalty, for wgan-gp, added separately)."""
    return GAN_LOSS_KINDS.get(kind).discriminator(real_logits, fake_logits)


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Loss the generator (or any network trained to fool the discriminator) minimises."""
    return GAN_LOSS_KINDS.get(kind).generator(fake_logits)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad critic(x_hat)|| - 1)^2 on random interpolates."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def real_fake_accuracy(
    kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of real inputs the discriminator calls real, and of fakes it calls fake.

    The decision boundary is 0 on the logit, except for lsgan whose targets are 0 and 1.
    """
    threshold = GAN_LOSS_KINDS.get(kind).threshold
    return (real_logits > threshold).float().mean(), (fake_logits <= threshold).float().mean()


# ----------------------------------------------------------------------------- likelihoods
def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | logits) per image for x in [0,1], summed over pixels."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


def gaussian_nll(mean: torch.Tensor, log_std: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, exp(log_std)^2) per image, summed over pixels."""
    log_std = log_std.expand_as(mean)
    nll = 0.5 * ((x - mean) / log_std.exp()) ** 2 + log_std + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(dim=1)


def discretized_logistic_nll(mean01: torch.Tensor, log_scale: torch.Tensor, x01: torch.Tensor) -> torch.Tensor:
    """-log P(x) per image for 8-bit pixels x (given on the [0, 1] scale as k / 255), summed over
    pixels: each pixel's probability is the mass a logistic(mean, exp(log_scale)) puts on its
    bin [x - 1/510, x + 1/510], the edge bins taking the tails below 0 and above 1 (Salimans et
    al. 2017, one logistic per pixel). A discrete likelihood: -log2 P(x) / pixels is the test
    bits per dimension that colour likelihood papers report.

    Written as log sigmoid(a) + log sigmoid(-b) + log(1 - exp(b - a)) for the bin edges a > b,
    the identity sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)), which stays
    finite however narrow the logistic.
    """
    inv_scale = torch.exp(-log_scale.expand_as(mean01))
    half_bin = 0.5 / 255
    a = (x01 - mean01 + half_bin) * inv_scale
    b = (x01 - mean01 - half_bin) * inv_scale
    log_inner = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(b - a))
    log_p = torch.where(x01 < half_bin, F.logsigmoid(a), torch.where(x01 > 1 - half_bin, F.logsigmoid(-b), log_inner))
    return -log_p.flatten(1).sum(dim=1)


def pixel_mse(x_hat: torch.Tensor, x: torch.Tensor, pixel_range: str) -> torch.Tensor:
    """Mean squared error per pixel on the [0,1] scale, whatever the model's pixel range."""
    from ..data.pixels import to_unit

    return F.mse_loss(to_unit(x_hat, pixel_range), to_unit(x, pixel_range))


def diagonal_gaussian_log_density(
    z: torch.Tensor, mu: torch.Tensor | float = 0.0, logvar: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) per row, in nats."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp()).sum(dim=-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I) (Kingma & Welling 2014)."""
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()
