"""Priors p(z) for the adversarial autoencoder, one small sampler each, found by name.

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

import torch


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
