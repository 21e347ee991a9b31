"""A VAE prior learned with the model: a mixture of diagonal Gaussians,

    p(z) = sum_k pi_k N(z; m_k, diag s_k^2),   pi = softmax(w),

whose weights, means and variances are trained by the same ELBO as the encoder and decoder
(the "mixture of Gaussians prior" of Tomczak & Welling 2018, the baseline of their
VampPrior). N(0, I) asks every posterior to
sit near the origin; the data's codes then leave holes there that prior draws fall into. A
learned mixture moves its mass to where the codes are, so that what the decoder was trained
on is what sampling draws.

The KL term has no closed form against a mixture; it is estimated with the posterior sample
the decoder reads, log q(z|x) - log p(z) (the ELBO stays a bound, its estimate unbiased).

``CodePrior`` gives a family with a Gaussian encoder and a decoder (VAE, VAE-GAN) the choice
``model.prior``: gaussian (N(0, I), the KL in closed form) or mixture (``prior_components``
Gaussians). The mixture's parameters live in the decoder, so they train with it: they belong
to the generative model p(x, z) = p(x|z) p(z), not to q(z|x).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from ..config.checks import one_of, positive
from .losses import diagonal_gaussian_log_density, kl_to_standard_normal

PRIORS = ("gaussian", "mixture")
LOG_VARIANCE_RANGE = (-9.0, 4.0)  # a component's variance stays within e^-9 .. e^4


class LearnedMixturePrior(nn.Module):
    """``components`` diagonal Gaussians in ``dim`` dimensions. At the start the means are
    standard normal draws (from the module's own seeded generator, so two models built alike
    start alike), the variances 1 and the weights equal."""

    def __init__(self, dim: int, components: int):
        super().__init__()
        start = torch.Generator().manual_seed(components * 1000 + dim)
        self.means = nn.Parameter(torch.randn(components, dim, generator=start))
        self.log_variances = nn.Parameter(torch.zeros(components, dim))
        self.weight_logits = nn.Parameter(torch.zeros(components))

    @property
    def components(self) -> int:
        return self.weight_logits.shape[0]

    def _log_variances(self) -> torch.Tensor:
        return self.log_variances.clamp(*LOG_VARIANCE_RANGE)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per row of ``z`` [n, dim], in nats.

        The squared distances sum_d (z_d - m_kd)^2 / s_kd^2 come from two matrix products
        (z^2 against 1/s^2, z against m/s^2) rather than from an [n, k, d] difference tensor,
        whose size and memory traffic grow with n * k * d."""
        logvar = self._log_variances()  # [k, d]
        precision = (-logvar).exp()
        squared = (
            z.pow(2) @ precision.T - 2 * z @ (self.means * precision).T + (self.means.pow(2) * precision).sum(1)
        )  # [n, k]
        per_component = -0.5 * (squared + logvar.sum(1) + z.shape[1] * math.log(2 * math.pi))
        return torch.logsumexp(per_component + self.weight_logits.log_softmax(0), dim=1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws [n, dim]: a component by its weight, then a point from it."""
        device = self.means.device
        which = torch.multinomial(self.weight_logits.softmax(0), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, device=device)
        return self.means[which] + noise * (0.5 * self._log_variances()[which]).exp()


def check_prior(cfg) -> None:
    """``model.prior`` and ``model.prior_components`` of a family with ``CodePrior``."""
    one_of(cfg.prior, PRIORS, "prior")
    positive(cfg.prior_components, "prior_components")


class PriorSettings(Protocol):
    """The keys of ``model.*`` that ``CodePrior`` reads."""

    @property
    def latent_dim(self) -> int: ...

    @property
    def prior(self) -> str: ...

    @property
    def prior_components(self) -> int: ...


class CodePrior:
    """p(z) of a family with a Gaussian encoder and a ``decoder`` whose ``cfg.prior`` picks
    N(0, I) or a learned mixture; call ``build_prior`` once the decoder exists."""

    # what the mixin reads of the Family it is mixed into (annotations only)
    cfg: PriorSettings
    decoder: nn.Module

    def build_prior(self) -> None:
        if self.cfg.prior == "mixture":
            self.decoder.add_module("prior", LearnedMixturePrior(self.cfg.latent_dim, self.cfg.prior_components))

    @property
    def prior(self) -> LearnedMixturePrior | None:
        """The learned mixture; None for N(0, I)."""
        return getattr(self.decoder, "prior", None)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per row, in nats."""
        return diagonal_gaussian_log_density(z) if self.prior is None else self.prior.log_prob(z)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.prior is None:
            return super().sample_latent(n, generator)  # type: ignore[misc]  # Family's, next in the MRO
        return self.prior.sample(n, generator)

    def kl_to_prior(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example: in closed form against N(0, I), and against the
        mixture estimated from ``z``, the reparameterised draw from q(z|x) the decoder reads."""
        if self.prior is None:
            return kl_to_standard_normal(mu, logvar)
        return diagonal_gaussian_log_density(z, mu, logvar) - self.prior.log_prob(z)
