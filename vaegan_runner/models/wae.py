"""Wasserstein autoencoder with an MMD penalty (Tolstikhin et al. 2018, "Wasserstein
Auto-Encoders", Algorithm 2, WAE-MMD).

    z~ = E(x)  (deterministic), or z~ ~ q(z|x) = N(mu(x), sigma^2(x)) reparameterised
    E, Dec  <-  mean c(x, Dec(z~))  +  lambda * MMD_k(q(z), p(z))

The AAE's sibling: both push the aggregate of the codes, q(z) = E_x q(z|x), onto the prior p(z)
(``model.prior``, ``vaegan_runner/models/fixed_priors.py``) while the decoder reconstructs, but where
the AAE trains a discriminator on codes, the WAE measures the gap with a kernel: the unbiased
estimate of the maximum mean discrepancy between the batch's codes and as many prior draws,

    MMD = 1/(n(n-1)) sum_{i!=j} [k(z_i, z_j) + k(z~_i, z~_j)] - 2/n^2 sum_{i,j} k(z_i, z~_j),

with the paper's inverse multiquadratics kernel k(a, b) = C / (C + |a - b|^2), summed over the
scales C = s * 2 * latent_dim (``model.kernel_scales``; 2 * latent_dim is the expected squared
distance of two draws of N(0, I)). One loss trains both networks; the kernel term moves the
encoder only. The cost c is the squared error summed over pixels (the paper's) or the Bernoulli
negative log-likelihood (``model.reconstruction``, as the AAE's). Samples decode prior draws.

Class-conditional (``model.conditional=true``): the label joins z at the decoder's input, as in
the supervised AAE, and the penalty is taken within each class of the batch (q(z | y) matched to
p(z) for every y, the WAE's counterpart of the conditional AAE's D(z, y)): a code that matches
the prior only as a whole can still carry the class, and the decoder then ignores its label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from omegaconf import MISSING

from ..config.checks import one_of, positive, require
from .aae import check_reconstruction, reconstruction_error
from .base import FAMILIES, Family, FamilyConfig, Phase
from .conditioning import decoder_for, run
from .encoders import ENCODER_TYPES, SwitchableEncoder
from .fixed_priors import check_prior_settings, prior_options, sample_prior
from .losses import pixel_mse
from .nets import build_encoder


@dataclass
class WAEConfig(FamilyConfig):
    encoder_type: str = MISSING  # deterministic (the paper's) | gaussian (reparameterised q(z|x))
    reconstruction: str = MISSING  # mse (summed squared error, the paper's c) | bernoulli (pixel_range=unit)
    prior: str = MISSING  # gaussian | uniform | mixture
    prior_components: int = MISSING  # mixture: number of Gaussians on the circle
    prior_radius: float = MISSING  # mixture: radius of the circle of means
    prior_std: float = MISSING  # mixture: standard deviation of each component
    mmd_weight: float = MISSING  # lambda: weight of the MMD penalty against the reconstruction cost
    kernel_scales: list[float] = field(default_factory=list)  # IMQ kernel scales, times 2 * latent_dim

    def __post_init__(self):
        super().__post_init__()
        one_of(self.encoder_type, ENCODER_TYPES, "encoder_type")
        check_reconstruction(self)
        check_prior_settings(self)
        positive(self.mmd_weight, "mmd_weight")
        require(
            len(self.kernel_scales) > 0 and all(s > 0 for s in self.kernel_scales),
            "kernel_scales",
            f"needs one or more scales, every one > 0, got {list(self.kernel_scales)}",
        )


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[n, m] squared Euclidean distances between the rows of ``a`` and ``b`` (written out rather
    than ``cdist``, whose gradient at a zero distance is not finite)."""
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T).clamp_min(0)


def imq_mmd(
    codes: torch.Tensor, prior: torch.Tensor, scales: list[float], labels: torch.Tensor | None = None
) -> torch.Tensor:
    """The unbiased MMD estimate between ``codes`` and ``prior`` draws (both [n, d]) with inverse
    multiquadratics kernels of scales ``s * 2 * d``, summed. With ``labels`` ([n]; prior draw i
    counts in the class of code i), the mean over the classes of each class's estimate, weighted
    by its count: one pass over kernels masked to pairs within a class, no loop over classes and
    no host sync. A class with a single code (no pairs) adds 0, as does a single code."""
    n, d = codes.shape
    labels = codes.new_zeros(n, dtype=torch.long) if labels is None else labels
    same = labels[:, None] == labels[None, :]
    count = same.sum(1).to(codes.dtype)  # the size of each code's class
    paired = count > 1
    # class c weighs n_c / n; its within sums divide by n_c (n_c - 1), its across sum by n_c^2
    within_weight = torch.where(paired, 1 / (n * (count - 1).clamp_min(1)), 0)[:, None]
    across_weight = torch.where(paired, 2 / (n * count), 0)[:, None]
    pairs = same & ~torch.eye(n, dtype=torch.bool, device=codes.device)
    within = squared_distances(codes, codes), squared_distances(prior, prior)
    across = squared_distances(codes, prior)
    total = codes.new_zeros(())
    for scale in scales:
        c = scale * 2.0 * d
        same_terms = sum((c / (c + dist)) for dist in within) * pairs * within_weight
        total = total + same_terms.sum() - ((c / (c + across)) * same * across_weight).sum()
    return total


@FAMILIES.register("wae")
class WAE(SwitchableEncoder, Family):
    cfg: WAEConfig
    config_class = WAEConfig
    network_names = ("encoder", "decoder")
    label_networks = ("decoder",)  # the supervised AAE's place for the label

    def __init__(self, cfg: WAEConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__(cfg, channels, image_size, num_classes)
        self.encoder = build_encoder(cfg.net, channels, image_size, self.encoder_out_dim())
        self.decoder = decoder_for(cfg.net, channels, image_size, cfg.latent_dim, self.num_classes)
        self.prior_options = prior_options(cfg)
        self.phases = [Phase("autoencoder", ("encoder", "decoder"), self.losses)]

    def sample_latent(self, n, generator=None):
        return sample_prior(
            self.cfg.prior, n, self.latent_dim, generator=generator, device=self.device, **self.prior_options
        )

    def reconstruction_error(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return reconstruction_error(self, logits, x)

    def mmd(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The penalty for a batch of codes, against as many fresh prior draws; conditional: the
        mean over the batch's classes (weighted by their counts) of the penalty of each class's
        codes, so that q(z | y) = p(z) for every class."""
        prior = self.sample_latent(z.shape[0]).to(z.dtype)
        return imq_mmd(z, prior, list(self.cfg.kernel_scales), y if self.conditional else None)

    def losses(self, x, y, step):
        z = self.code(x)
        recon = self.reconstruction_error(run(self.decoder, z, y), x).mean()
        mmd = self.mmd(z.float(), y)
        loss = recon + self.cfg.mmd_weight * mmd
        return {"encoder": loss, "decoder": loss}, {"recon": recon, "mmd": mmd}

    @torch.no_grad()
    def evaluate(self, x, y):
        """Held-out reconstruction, and the MMD between held-out codes and the prior."""
        z = self.code(x)
        logits = run(self.decoder, z, y)
        return {
            "recon": self.reconstruction_error(logits, x).mean(),
            "recon_mse": pixel_mse(self.activate(logits), x, self.pixel_range),
            "mmd": self.mmd(z.float(), y),
        }

    @torch.no_grad()
    def generate(self, z, y=None):
        return self.activate(run(self.decoder, z, self.labels_or_balanced(z.shape[0], y)))
