"""Ex-post density estimation: a Gaussian mixture fitted to the codes of the training images,
drawn from in place of a model's prior p(z) (Ghosh et al. 2020, "From variational to
deterministic autoencoders", section 4; Dai & Wipf 2019 fit a second VAE instead).

An autoencoder's samples can fall short in two ways: decoded codes that already look unlike
the data (a blurry decoder: the ``recon_fid`` metric is high), or prior draws that land where
no training code lies (``recon_fid`` low, ``domain_fid`` high). A mixture fitted to the codes the
decoder was trained on removes the second. It changes what is sampled, not what is trained: the
likelihood bounds (``neg_elbo``, ``iwae``) stay those of the model's own prior. ``vaegan-eval``
and ``vaegan-sample`` take it as ``prior=gmm``; the metrics' protocol stamp records it.

EM with full covariances (Dempster et al. 1977) in float64, started from k distinct codes
drawn with a fixed seed, so the same codes give the same mixture.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

COVARIANCE_FLOOR = 1e-6  # added to each covariance's diagonal, relative to the codes' variance


@dataclass
class GaussianMixture:
    weights: torch.Tensor  # [k]
    means: torch.Tensor  # [k, d]
    covariances: torch.Tensor  # [k, d, d]
    iterations: int  # EM iterations run

    @property
    def components(self) -> int:
        return self.weights.shape[0]

    def component_log_densities(self, codes: torch.Tensor) -> torch.Tensor:
        """[n, k] log w_j + log N(code; mean_j, covariance_j)."""
        x = codes.double()
        chol = torch.linalg.cholesky(self.covariances)  # [k, d, d]
        log_det = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # [k]
        squared = torch.stack(  # Mahalanobis distances, one component at a time: [n, k]
            [
                torch.linalg.solve_triangular(chol[j], (x - self.means[j]).T, upper=False).pow(2).sum(0)
                for j in range(self.components)
            ],
            dim=1,
        )
        return self.weights.log() - 0.5 * (squared + log_det + x.shape[1] * math.log(2 * math.pi))

    def log_likelihood(self, codes: torch.Tensor) -> float:
        """Mean log-density of ``codes`` under the mixture, in nats."""
        return float(torch.logsumexp(self.component_log_densities(codes), dim=1).mean())

    @classmethod
    def fit(
        cls, codes: torch.Tensor, components: int, iterations: int = 100, tolerance: float = 1e-3, seed: int = 0
    ) -> GaussianMixture:
        """Maximum-likelihood mixture of ``components`` full-covariance Gaussians by EM; stops
        when the mean log-likelihood per code gains less than ``tolerance`` nats in an iteration
        (scikit-learn's ``GaussianMixture`` defaults: 1e-3, at most 100 iterations)."""
        x = codes.detach().double().cpu()
        n, d = x.shape
        if not 1 <= components <= n:
            raise ValueError(f"{components} components for {n} codes")
        floor = COVARIANCE_FLOOR * x.var(dim=0).mean().clamp_min(1e-12) * torch.eye(d, dtype=x.dtype)
        start = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:components]
        covariance = torch.cov(x.T).reshape(d, d) + floor if n > 1 else floor
        mixture = cls(
            torch.full((components,), 1.0 / components, dtype=x.dtype),
            x[start].clone(),
            covariance.expand(components, d, d).clone(),
            0,
        )
        previous = -math.inf
        for step in range(1, iterations + 1):
            log_densities = mixture.component_log_densities(x)
            total = torch.logsumexp(log_densities, dim=1, keepdim=True)
            responsibilities = (log_densities - total).exp()  # E step
            mass = responsibilities.sum(0) + 1e-12  # M step
            means = responsibilities.T @ x / mass[:, None]
            covariances = torch.stack(
                [
                    (responsibilities[:, j, None] * (x - means[j])).T @ (x - means[j]) / mass[j] + floor
                    for j in range(components)
                ]
            )
            mixture = cls(mass / n, means, covariances, step)
            current = float(total.mean())
            if current - previous < tolerance:
                break
            previous = current
        return mixture

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """n float32 draws; with ``generator``, the same draws for the same seed."""
        cpu = torch.Generator().manual_seed(generator.initial_seed()) if generator is not None else None
        which = torch.multinomial(self.weights, n, replacement=True, generator=cpu)
        noise = torch.randn(n, self.means.shape[1], generator=cpu, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covariances)
        draws = self.means[which] + (chol[which] @ noise[..., None]).squeeze(-1)
        return draws.float().to(device or "cpu")


@torch.no_grad()
def fit_to_codes(family, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], components: int) -> tuple:
    """(the mixture fitted to ``family.encode`` of every batch of (pixels, labels), the code count)."""
    codes = torch.cat([family.encode(x, y).cpu() for x, y in batches])
    return GaussianMixture.fit(codes, components), codes.shape[0]


@dataclass
class ExPostPrior:
    """A fitted mixture standing in for a family's ``sample_latent``; ``stamp`` says what it is
    (the metrics' protocol stamp records it, so its values never pass for the model prior's)."""

    mixture: GaussianMixture
    codes: int  # training codes it was fitted to
    device: torch.device

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mixture.sample(n, generator, self.device)

    @property
    def stamp(self) -> str:
        return (
            f"gmm: {self.mixture.components} full-covariance Gaussians fitted by EM to {self.codes} "
            f"training codes ({self.mixture.iterations} iterations)"
        )
