"""Walks through latent space: straight lines between codes, and one-axis traversals."""

from __future__ import annotations

import torch

from . import Family


@torch.no_grad()
def interpolate(
    family: Family, start: torch.Tensor, end: torch.Tensor, steps: int, y: torch.Tensor | None = None
) -> torch.Tensor:
    """One row per (start, end) pair of codes: ``steps`` decodings along the line between them
    (a conditional family decodes row i with label ``y[i]``; None: balanced labels)."""
    weights = torch.linspace(0, 1, steps, device=start.device).view(1, -1, 1)
    path = start[:, None] + weights * (end - start)[:, None]  # [pairs, steps, latent]
    labels = None if y is None else y.repeat_interleave(steps)
    return family.generate(path.flatten(0, 1), labels)


@torch.no_grad()
def traverse(
    family: Family, code: torch.Tensor, dims: int, steps: int, span: float = 3.0, label: int = 0
) -> torch.Tensor:
    """Row d: ``code`` with its d-th coordinate swept over code_d +- ``span`` (prior standard
    deviations), the others held; ``dims`` rows of ``steps`` decodings (a conditional family
    decodes them all with ``label``)."""
    offsets = torch.linspace(-span, span, steps, device=code.device)
    rows = code.expand(dims, steps, -1).clone()  # [dims, steps, latent]
    for d in range(dims):
        rows[d, :, d] = code[d] + offsets
    labels = torch.full((dims * steps,), label, device=code.device) if family.conditional else None
    return family.generate(rows.flatten(0, 1), labels)


@torch.no_grad()
def class_grid(family: Family, z: torch.Tensor) -> torch.Tensor:
    """Row k: the codes ``z`` [n, latent] decoded with label k, for every class of a conditional
    family: the columns hold the style, the rows the class ([num_classes * n] images). With the
    codes of real images (AAE, CVAE) it is style transfer."""
    k, n = family.num_classes, z.shape[0]
    if k is None:
        raise ValueError(f"{type(family).__name__} is not class-conditional: it has no classes to draw")
    labels = torch.arange(k, device=z.device).repeat_interleave(n)
    return family.generate(z.repeat(k, 1), labels)
