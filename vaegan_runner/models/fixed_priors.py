"""Fixed priors p(z) of the adversarial autoencoder and the WAE-MMD, one small sampler each,
found by name: chosen in the config and drawn from, never trained (the VAE's prior learned
with the model is ``learned_prior.py``; a mixture fitted to trained codes, ``fitted_prior.py``).

The AAE's code discriminator learns to tell draws from the prior ("real") from the encoder's
codes ("fake"); decoding prior draws is how an AAE samples. Every sampler returns ``n`` codes
of dimension ``dim`` as float32 [n, dim].

    gaussian   N(0, I)
    uniform    U[-1, 1] in every dimension
    mixture    ``components`` equally weighted Gaussians N(m_k, std^2 I), the means evenly
               spaced on a circle of ``radius`` in the first two dimensions (0 in the rest):
               the 10-component picture of Makhzani et al. (2015), Figure 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch

from ..config.checks import one_of, positive, require
from .learned_prior import PriorSettings as PriorChoice


def gaussian(
    n: int, dim: int, *, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    return torch.randn(n, dim, generator=generator, device=device)


def uniform(
    n: int, dim: int, *, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    return torch.rand(n, dim, generator=generator, device=device) * 2 - 1


def mixture_means(dim: int, components: int, radius: float, device: torch.device | None = None) -> torch.Tensor:
    """[components, dim]: the component means, on a circle in dimensions 0 and 1."""
    angle = torch.arange(components, device=device) * (2 * math.pi / components)
    means = torch.zeros(components, dim, device=device)
    means[:, 0], means[:, 1] = radius * angle.cos(), radius * angle.sin()
    return means


def mixture(
    n: int,
    dim: int,
    *,
    components: int,
    radius: float,
    std: float,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    which = torch.randint(components, (n,), generator=generator, device=device)
    noise = torch.randn(n, dim, generator=generator, device=device)
    return mixture_means(dim, components, radius, device)[which] + std * noise


PRIORS: dict[str, Callable[..., torch.Tensor]] = {"gaussian": gaussian, "uniform": uniform, "mixture": mixture}


def sample_prior(
    name: str,
    n: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    **options,
) -> torch.Tensor:
    """n draws from the prior ``name``; ``options`` are that sampler's own keywords."""
    return PRIORS[name](n, dim, generator=generator, device=device, **options)


class PriorSettings(PriorChoice, Protocol):
    """The keys of ``model.*`` that choose a sampled code prior (the AAE's and the WAE's): those
    of the learned prior's choice, and the mixture's circle."""

    @property
    def prior_radius(self) -> float: ...

    @property
    def prior_std(self) -> float: ...


def check_prior_settings(cfg: PriorSettings) -> None:
    """``model.prior`` is known, its mixture settings positive, and the latent holds the circle."""
    one_of(cfg.prior, PRIORS, "prior")
    positive(cfg.prior_components, "prior_components")
    positive(cfg.prior_radius, "prior_radius")
    positive(cfg.prior_std, "prior_std")
    require(
        cfg.prior != "mixture" or cfg.latent_dim >= 2,
        "latent_dim",
        "the mixture prior puts its means on a circle in the first two dimensions: use model.latent_dim >= 2",
    )


def prior_options(cfg: PriorSettings) -> dict[str, float]:
    """The keywords ``sample_prior`` passes to the chosen sampler (only the mixture has any)."""
    if cfg.prior != "mixture":
        return {}
    return {"components": cfg.prior_components, "radius": cfg.prior_radius, "std": cfg.prior_std}
