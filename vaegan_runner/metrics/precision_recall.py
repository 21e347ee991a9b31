"""Improved precision and recall of a generative model, from k-nearest-neighbour manifolds.

Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved Precision and Recall Metric for
Assessing Generative Models". Each set's manifold is the union of hyperspheres centred on its
samples, the radius of a sample being the distance to its k-th nearest neighbour in its own set
(the sample itself not counted). Precision is the fraction of fake samples inside the real
manifold (quality); recall is the fraction of real samples inside the fake manifold (coverage).
A point on a sphere's boundary counts as inside, as in the authors' code.

Distances are computed in float64 with ``torch.cdist``, ``chunk`` rows at a time, so 10k x 10k
sets need only ``chunk`` x 10k distances in memory at once.
"""

from __future__ import annotations

import torch


def _knn_radii(feats: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance [N] from each row of ``feats`` to its k-th nearest other row."""
    radii = []
    for rows in feats.split(chunk):
        dist = torch.cdist(rows, feats)
        # The row itself is at distance 0, the smallest, so the k-th neighbour is the (k+1)-th value.
        radii.append(dist.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """(precision, recall) of ``fake`` [M, D] against ``real`` [N, D] with k-NN radii."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need [N, D] and [M, D] features, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k={k} needs 1 <= k < the size of each set ({real.shape[0]}, {fake.shape[0]})")
    real = real.to(torch.float64)
    fake = fake.to(real.device, torch.float64)
    real_radii = _knn_radii(real, k, chunk)
    fake_radii = _knn_radii(fake, k, chunk)

    fake_inside = []
    real_covered = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    for rows, radii in zip(fake.split(chunk), fake_radii.split(chunk)):
        dist = torch.cdist(rows, real)  # [chunk of fake, N real]
        fake_inside.append((dist <= real_radii[None, :]).any(dim=1))
        real_covered |= (dist <= radii[:, None]).any(dim=0)
    precision = torch.cat(fake_inside).double().mean()
    recall = real_covered.double().mean()
    return float(precision), float(recall)
