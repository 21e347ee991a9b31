"""Walks through latent space: straight lines between codes, and one-axis traversals."""

from __future__ import annotations

import torch

from . import Family


@torch.no_grad()
def interpolate(family: Family, start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """One row per (start, end) pair of codes: ``steps`` decodings along the line between them."""
    weights = torch.linspace(0, 1, steps, device=start.device).view(1, -1, 1)
    path = start[:, None] + weights * (end - start)[:, None]  # [pairs, steps, latent]
    return family.generate(path.flatten(0, 1))


@torch.no_grad()
def traverse(family: Family, code: torch.Tensor, dims: int, steps: int, span: float = 3.0) -> torch.Tensor:
    """Row d: ``code`` with its d-th coordinate swept over code_d +- ``span`` (prior standard
    deviations), the others held; ``dims`` rows of ``steps`` decodings."""
    offsets = torch.linspace(-span, span, steps, device=code.device)
    rows = code.expand(dims, steps, -1).clone()  # [dims, steps, latent]
    for d in range(dims):
        rows[d, :, d] = code[d] + offsets
    return family.generate(rows.flatten(0, 1))
