"""Fréchet distance between two feature sets, each summarised by a Gaussian (mean, covariance).

    FD = ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})

With Inception pool3 features this is the FID of Heusel et al. 2017, "GANs Trained by a Two
Time-Scale Update Rule Converge to a Local Nash Equilibrium"; the formula is the Fréchet (2-
Wasserstein) distance between Gaussians of Dowson & Landau 1982.

The trace term is computed without a general matrix square root: S_a S_b = A (A S_b) with
A = S_a^{1/2}, and A (A S_b) has the same non-zero eigenvalues as (A S_b) A = A S_b A, which is
symmetric positive semi-definite. So tr((S_a S_b)^{1/2}) is the sum of the square roots of the
eigenvalues of A S_b A, found with ``eigh``. This holds for singular covariances too (fewer
samples than dimensions), where a general ``sqrtm`` of S_a S_b is ill-conditioned. All in float64.
Accuracy: for full-rank covariances the FD of a set with itself comes out ~1e-12; with N < D the
zero eigenvalues come out as rounding noise (~1e-16 of the largest) whose square roots add up over
the D - N + 1 null directions, so it comes out ~1e-6 of tr(S) instead (still finite, never NaN).

``FeatureAccumulator`` builds the statistics batch by batch so 10k x 2048 features never have
to be held at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch


@dataclass
class FeatureStats:
    """Sample mean [D] and unbiased covariance [D, D] (float64) of ``count`` feature vectors."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int

    @classmethod
    def from_features(cls, feats: torch.Tensor) -> FeatureStats:
        """Statistics of ``feats`` [N, D]; the covariance divides by N - 1."""
        if feats.ndim != 2 or feats.shape[0] < 2:
            raise ValueError(f"need features of shape [N >= 2, D], got {tuple(feats.shape)}")
        x = feats.to(torch.float64)
        mean = x.mean(dim=0)
        centred = x - mean
        cov = centred.T @ centred / (x.shape[0] - 1)
        return cls(mean=mean, cov=cov, count=x.shape[0])

    def to_dict(self) -> dict[str, torch.Tensor | int]:
        """Plain tensors and an int, loadable with ``torch.load(..., weights_only=True)``."""
        return {"mean": self.mean.cpu(), "cov": self.cov.cpu(), "count": self.count}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor | int]) -> FeatureStats:
        """Inverse of ``to_dict``."""
        mean, cov = cast(torch.Tensor, d["mean"]), cast(torch.Tensor, d["cov"])  # to_dict's tensors
        return cls(mean=mean.to(torch.float64), cov=cov.to(torch.float64), count=int(d["count"]))


class FeatureAccumulator:
    """Running float64 sums (sum, sum of outer products, count) over batches of features.

    The sums are taken of ``x - shift`` with ``shift`` the mean of the first batch, so the
    covariance (S2 - n m m^T) / (n - 1) does not subtract two large, nearly equal numbers when
    the features sit far from the origin (the shifted-data form of the textbook algorithm).
    """

    def __init__(self) -> None:
        self.shift: torch.Tensor | None = None
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None
        self.count = 0

    @torch.no_grad()
    def add(self, feats: torch.Tensor) -> None:
        """Adds a batch of features [B, D]."""
        if feats.ndim != 2:
            raise ValueError(f"need features of shape [B, D], got {tuple(feats.shape)}")
        x = feats.to(torch.float64)
        if self.shift is None:
            self.shift = x.mean(dim=0)
            self.sum = torch.zeros_like(self.shift)
            self.outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        x = x - self.shift
        assert self.sum is not None and self.outer is not None  # set with the shift
        self.sum += x.sum(dim=0)
        self.outer += x.T @ x
        self.count += x.shape[0]

    def stats(self) -> FeatureStats:
        """Mean and unbiased covariance of everything added so far."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors, have {self.count}")
        assert self.shift is not None and self.sum is not None and self.outer is not None  # set by the first add
        shifted_mean = self.sum / self.count
        cov = (self.outer - self.count * torch.outer(shifted_mean, shifted_mean)) / (self.count - 1)
        return FeatureStats(mean=shifted_mean + self.shift, cov=cov, count=self.count)


def _psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix (eigenvalues below 0 from rounding -> 0)."""
    eigvals, eigvecs = torch.linalg.eigh(m)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """Fréchet distance between the Gaussians N(a.mean, a.cov) and N(b.mean, b.cov)."""
    mean_a, cov_a = a.mean.to(torch.float64), a.cov.to(torch.float64)
    mean_b, cov_b = b.mean.to(mean_a.device, torch.float64), b.cov.to(mean_a.device, torch.float64)
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    middle = (middle + middle.T) / 2
    trace_sqrt = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    diff = mean_a - mean_b
    return float(diff @ diff + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt)
