"""What a run shows of itself as it trains (TensorBoard images, and ``samples.png`` at the end).

``samples`` is a grid decoded from one fixed latent batch, the same at every step. Families
with an encoder add ``reconstructions`` (rows of held-out inputs over their reconstructions),
``interpolations`` (straight lines between encodings, ``latent_paths.py``) and the latent view
(held-out codes against the prior, ``latent_view.py``). A class-conditional family adds
``samples_by_class``: one row per class, the same codes in every row; a family whose latent
holds a discrete code (the GAN with ``model.info_codes``) adds ``samples_by_code``, one row per
category of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch

from ..data import ImageData
from ..data.pixels import to_pixels as scale_images
from ..data.pixels import to_unit
from ..models import Family
from ..models.latent_paths import class_grid, interpolate
from .latent_view import write_latent_view
from .run_log import RunLog

N_RECONSTRUCTIONS = 32  # test images shown as input | reconstruction rows
GRID_ROW = 8
INTERPOLATION_STEPS = 10


class Snapshots:
    """The images of one run, logged every ``every_n_steps``; the latest sample grid is kept
    for ``samples.png``."""

    def __init__(self, family: Family, data: ImageData, log: RunLog, n_samples: int, seed: int, every_n_steps: int):
        self.family, self.data, self.log, self.every_n_steps = family, data, log, every_n_steps
        self.fixed_z = fixed_latent(family, n_samples, seed)
        images, self.recon_y = data.test.take(N_RECONSTRUCTIONS)
        self.recon_x = scale_images(images, family.pixel_range)
        self.grid: torch.Tensor | None = None

    def write(self, step: int) -> None:
        self.grid = log_images(self.family, self.log, step, self.fixed_z, self.recon_x, self.recon_y, self.data)

    def save_samples(self, path: Path, step: int) -> None:
        """Write the sample grid of ``step`` to ``path`` (logging it first unless it was, at ``step``)."""
        if self.grid is None or step % self.every_n_steps:
            self.write(step)
        from torchvision.utils import save_image  # torchvision costs ~1.5 s of startup: import it when used

        save_image(self.grid, path)


def fixed_latent(family: Family, n: int, seed: int) -> torch.Tensor:
    """The same latent batch for every sample grid of a run (and of runs with the same seed)."""
    devices = [family.device] if family.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return family.sample_latent(n)


@torch.no_grad()
def log_images(
    family: Family,
    log: RunLog,
    step: int,
    fixed_z: torch.Tensor,
    recon_x: torch.Tensor,
    recon_y: torch.Tensor,
    data: ImageData,
) -> torch.Tensor:
    """Sample grid from the fixed latent batch (and, conditional, one row per class); for
    families with an encoder, rows of held-out inputs over their reconstructions,
    interpolations between encodings, and the held-out codes against the prior
    (``log_latent_view``). Returns the sample grid."""
    family.eval()
    grid = log.images("samples", to_unit(family.generate(fixed_z), family.pixel_range), step)
    if family.conditional:
        by_class = class_grid(family, fixed_z[:GRID_ROW])
        log.images("samples_by_class", to_unit(by_class, family.pixel_range), step, nrow=min(GRID_ROW, len(fixed_z)))
    by_code = family.code_grid(fixed_z[:GRID_ROW])
    if by_code is not None:
        log.images("samples_by_code", to_unit(by_code, family.pixel_range), step, nrow=min(GRID_ROW, len(fixed_z)))
    codes = family.encode(recon_x, recon_y)
    if codes is not None:
        recon = family.generate(codes, recon_y)
        row = min(GRID_ROW, recon_x.shape[0])  # a held-out split smaller than a row: one shorter row
        n = recon_x.shape[0] // row * row
        rows = torch.stack(
            [recon_x[:n].view(-1, row, *recon_x.shape[1:]), recon[:n].view(-1, row, *recon.shape[1:])], dim=1
        )
        log.images("reconstructions", to_unit(rows.flatten(0, 2), family.pixel_range), step, nrow=row)
        pairs = min(GRID_ROW, codes.shape[0] // 2)
        if pairs:
            path = interpolate(family, codes[:pairs], codes[pairs : 2 * pairs], INTERPOLATION_STEPS, recon_y[:pairs])
            log.images("interpolations", to_unit(path, family.pixel_range), step, nrow=INTERPOLATION_STEPS)
        log_latent_view(family, log, step, data)
    family.train()
    return grid


@torch.no_grad()
def log_latent_view(family: Family, log: RunLog, step: int, data: ImageData, n: int = 500, chunk: int = 100) -> None:
    """The codes of ``n`` held-out images, coloured by label, against as many prior draws
    (a scatter for 2-d codes, else per-dimension histograms; see ``latent_view.py``).
    The prior draws use their own generator, so the training run's randomness is untouched."""
    images, labels = data.test.take(n)
    x = scale_images(images, family.pixel_range)
    # called for a family whose encode gives codes (write checks it): not None
    codes = torch.cat(
        [cast(torch.Tensor, family.encode(part, y)) for part, y in zip(x.split(chunk), labels.split(chunk))]
    )
    prior = family.sample_latent(codes.shape[0], torch.Generator(family.device).manual_seed(0))
    write_latent_view(log.writer, codes, labels, prior, step)
