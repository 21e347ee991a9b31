"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs").

The squared maximum mean discrepancy between two feature sets under the cubic polynomial
kernel k(x, y) = (x·y / d + 1)^3, estimated without bias, averaged over random subsets:

    MMD^2 = sum_{i != j} k(x_i, x_j) / (m(m-1)) + sum_{i != j} k(y_i, y_j) / (m(m-1))
            - 2 sum_{i, j} k(x_i, y_j) / m^2

for subsets x, y of m rows each. Unlike FID it has no bias that depends on the sample count,
so values from 2,000 samples during training and 10,000 at the end are comparable. Defaults
follow torch-fidelity's (100 subsets of 1,000; the standard deviation over subsets with
ddof 0); fewer rows than 1,000 on either side shrink the subsets to what there is. All in
float64.
"""

from __future__ import annotations

import torch

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased MMD^2 estimate of two equally sized sets under the cubic kernel."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kernel_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float, int]:
    """(mean, standard deviation, subset size) of the MMD^2 over ``subsets`` random subsets of
    ``real`` [N, D] and ``fake`` [M, D], drawn without replacement by a generator seeded with ``seed``."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need two [N, D] feature sets, got {tuple(real.shape)} and {tuple(fake.shape)}")
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise ValueError(f"need at least 2 rows on each side, got {real.shape[0]} and {fake.shape[0]}")
    generator = torch.Generator().manual_seed(seed)
    real, fake = real.detach().cpu().double(), fake.detach().cpu().double()
    values = torch.tensor(
        [
            mmd2_unbiased(
                real[torch.randperm(real.shape[0], generator=generator)[:size]],
                fake[torch.randperm(fake.shape[0], generator=generator)[:size]],
            )
            for _ in range(subsets)
        ],
        dtype=torch.float64,
    )
    return float(values.mean()), float(values.std(unbiased=False)), size
