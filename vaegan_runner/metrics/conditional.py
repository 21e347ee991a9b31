"""Whether a class-conditional model obeys its label, in a classifier's eyes.

``label_accuracy``: the share of samples drawn for label k that the classifier assigns to k
(the "classification accuracy" of conditional GAN papers, e.g. Odena et al. 2017, ACGAN).
``intra_fid``: the FID between the samples drawn for class k and the real images of class k,
averaged over classes (Miyato & Koyama 2018, section 5.1): low only when every class is both
obeyed and varied, which a good unconditional FID with mixed-up labels would not be.
"""

from __future__ import annotations

import math

import torch

from .frechet import FeatureStats, frechet_distance


def label_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose argmax is their label."""
    return float((logits.argmax(dim=1) == labels.to(logits.device)).double().mean())


def intra_fid(
    fake: torch.Tensor,
    fake_labels: torch.Tensor,
    real: torch.Tensor,
    real_labels: torch.Tensor,
    num_classes: int,
    min_count: int,
) -> tuple[float, int]:
    """(mean over classes of FID(fakes of class k, reals of class k), classes used): the classes
    with at least ``min_count`` fakes and reals; NaN when no class has that many."""
    distances = []
    for k in range(num_classes):
        f, r = fake[fake_labels.to(fake.device) == k], real[real_labels.to(real.device) == k]
        if f.shape[0] >= min_count and r.shape[0] >= min_count:
            distances.append(frechet_distance(FeatureStats.from_features(f), FeatureStats.from_features(r)))
    return (sum(distances) / len(distances) if distances else math.nan), len(distances)
