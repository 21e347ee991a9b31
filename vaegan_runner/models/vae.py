"""Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

    q(z|x) = N(mu(x), diag sigma^2(x))      Gaussian encoder, reparameterised
    p(z)   = N(0, I), or (``model.prior=mixture``) a mixture of Gaussians learned with the model
             (models/learned_prior.py)
    p(x|z) = Bernoulli(decoder(z)),  N(decoder(z), sigma_x^2),  or a discretised logistic per
             8-bit pixel around decoder(z) (colour images: a discrete likelihood, so the bound
             reads as bits per dimension) with one learned scale per channel, or (``model.
             logistic_scale=pixel``) a scale per pixel that the decoder outputs beside the means,
             as PixelCNN++'s output distribution does (Salimans et al. 2017)
    loss   = E_q[-log p(x|z)] + beta_t * KL(q(z|x) || p(z)),  beta_t warmed up linearly

The KL is in closed form against N(0, I) and estimated from the posterior sample against the
mixture (models/learned_prior.py says how and why). The negative ELBO (beta = 1) is logged on
its own, in nats per image, for training batches and for the held-out split.

Class-conditional (``model.conditional=true``): the CVAE of Sohn et al. (2015), q(z|x, y) and
p(x|z, y) with the one-hot label at both networks' inputs, p(z) unchanged; the bounds are then
on log p(x|y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from omegaconf import MISSING
from torch import nn

from ..config.checks import non_negative, one_of, positive, require
from ..data.pixels import to_unit
from .base import FAMILIES, Family, FamilyConfig, Phase
from .conditioning import decoder_for, encoder_for, run
from .encoders import GaussianAutoencoder, gaussian_posterior
from .learned_prior import CodePrior, check_prior
from .losses import (
    bernoulli_nll,
    diagonal_gaussian_log_density,
    discretized_logistic_nll,
    gaussian_nll,
    reparameterize,
)

LIKELIHOODS = ("bernoulli", "gaussian", "discretized_logistic")
LOGISTIC_SCALES = ("channel", "pixel")
LOGISTIC_INIT_SCALE = 0.1  # the logistic's starting scale: a spread like natural images' pixels
LOGISTIC_MIN_LOG_SCALE = -7.0  # a decoded log scale is clamped here, as PixelCNN++ does


@dataclass
class VAEConfig(FamilyConfig):
    likelihood: str = MISSING  # bernoulli | gaussian | discretized_logistic
    decoder_std: float | None = MISSING  # gaussian: fixed sigma_x; null = learn one sigma_x
    beta: float = MISSING
    kl_warmup_steps: int = MISSING  # beta ramps 0 -> beta over this many steps (0: off)
    prior: str = MISSING  # gaussian (N(0, I)) | mixture (learned with the model)
    prior_components: int = MISSING  # mixture: number of Gaussians
    logistic_scale: str = MISSING  # discretized_logistic: channel (one learned scale each) | pixel (decoded)

    def __post_init__(self):
        super().__post_init__()
        one_of(self.likelihood, LIKELIHOODS, "likelihood")
        require(
            self.likelihood != "bernoulli" or self.pixel_range == "unit",
            "pixel_range",
            "a Bernoulli decoder models pixels in [0,1]: use model.pixel_range=unit, "
            "or model.likelihood=gaussian for pixels in [-1,1]",
        )
        positive(self.decoder_std, "decoder_std", allow_none=True)
        require(
            self.decoder_std is None or self.likelihood == "gaussian",
            "decoder_std",
            f"is the fixed sigma of the gaussian likelihood; with likelihood={self.likelihood} leave it null",
        )
        one_of(self.logistic_scale, LOGISTIC_SCALES, "logistic_scale")
        require(
            self.logistic_scale == "channel" or self.likelihood == "discretized_logistic",
            "logistic_scale",
            f"is the scale of the discretized_logistic likelihood; with likelihood={self.likelihood} leave it channel",
        )
        non_negative(self.beta, "beta")
        non_negative(self.kl_warmup_steps, "kl_warmup_steps")
        check_prior(self)


@FAMILIES.register("vae")
class VAE(CodePrior, GaussianAutoencoder, Family):
    cfg: VAEConfig
    config_class = VAEConfig
    network_names = ("encoder", "decoder")
    has_likelihood = True
    label_networks = ("encoder", "decoder")  # CVAE: q(z|x,y), p(x|z,y)
    added_keys = {"prior": "gaussian", "prior_components": 10, "logistic_scale": "channel"}

    def __init__(self, cfg: VAEConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__(cfg, channels, image_size, num_classes)
        self.encoder = encoder_for(cfg.net, channels, image_size, 2 * cfg.latent_dim, self.num_classes)
        # per-pixel scales: the decoder's first `channels` maps are the pixels, the others their log scales
        self.decodes_scales = cfg.likelihood == "discretized_logistic" and cfg.logistic_scale == "pixel"
        outputs = channels * (2 if self.decodes_scales else 1)
        self.decoder = decoder_for(cfg.net, outputs, image_size, cfg.latent_dim, self.num_classes)
        if cfg.likelihood == "gaussian" and cfg.decoder_std is None:
            self.decoder.register_parameter("log_std", nn.Parameter(torch.zeros(1)))
        if cfg.likelihood == "discretized_logistic" and not self.decodes_scales:
            log_scale = torch.full((channels, 1, 1), math.log(LOGISTIC_INIT_SCALE))
            self.decoder.register_parameter("log_scale", nn.Parameter(log_scale))
        self.build_prior()
        self.phases = [Phase("elbo", ("encoder", "decoder"), self.elbo_losses)]

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """The pixels of the decoder's output (without the log scales it decodes beside them)."""
        return super().activate(logits[:, : self.channels] if self.decodes_scales else logits)

    def logistic_log_scale(self, logits: torch.Tensor) -> torch.Tensor:
        """The discretised logistic's log scale: per pixel, decoded (starting near
        ``LOGISTIC_INIT_SCALE``, at least ``LOGISTIC_MIN_LOG_SCALE``), or one learned per channel."""
        if self.decodes_scales:
            decoded = logits[:, self.channels :] + math.log(LOGISTIC_INIT_SCALE)
            return decoded.clamp(min=LOGISTIC_MIN_LOG_SCALE)
        return cast(torch.Tensor, self.decoder.log_scale)  # registered in __init__

    def nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image, in nats."""
        if self.cfg.likelihood == "bernoulli":
            return bernoulli_nll(logits, x)
        if self.cfg.likelihood == "discretized_logistic":
            return discretized_logistic_nll(
                to_unit(self.activate(logits), self.pixel_range),
                self.logistic_log_scale(logits),
                to_unit(x, self.pixel_range),
            )
        fixed = self.cfg.decoder_std
        log_std = cast(torch.Tensor, self.decoder.log_std) if fixed is None else logits.new_tensor(fixed).log()
        return gaussian_nll(self.activate(logits), log_std, x)

    def elbo_terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image reconstruction NLL and KL, from one posterior sample (the KL in closed form
        against N(0, I), estimated from that sample against the learned mixture)."""
        mu, logvar = gaussian_posterior(self.encoder, x, y)
        z = reparameterize(mu, logvar)
        return self.nll(run(self.decoder, z, y), x), self.kl_to_prior(mu, logvar, z)

    def beta_at(self, step: int) -> float:
        warmup = self.cfg.kl_warmup_steps
        return self.cfg.beta * (min(1.0, step / warmup) if warmup else 1.0)

    def elbo_losses(self, x, y, step):
        recon, kl = self.elbo_terms(x, y)
        loss = (recon + self.beta_at(step) * kl).mean()
        logs = {"recon": recon.mean(), "kl": kl.mean(), "neg_elbo": (recon + kl).mean()}
        return {"encoder": loss, "decoder": loss}, logs

    @torch.no_grad()
    def evaluate(self, x, y):
        recon, kl = self.elbo_terms(x, y)
        return {"recon": recon.mean(), "kl": kl.mean(), "neg_elbo": (recon + kl).mean()}

    @torch.no_grad()
    def log_importance_weights(self, x, k, y=None):
        """log p(x|z) + log p(z) - log q(z|x) for k posterior draws per image (Burda et al. 2016)."""
        mu, logvar = gaussian_posterior(self.encoder, x, y)
        weights = []
        for _ in range(k):
            z = reparameterize(mu, logvar)
            weights.append(
                -self.nll(run(self.decoder, z, y), x) + self.log_prior(z) - diagonal_gaussian_log_density(z, mu, logvar)
            )
        return torch.stack(weights)
