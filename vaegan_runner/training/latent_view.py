"""How well held-out codes match the prior, as TensorBoard shows it (no matplotlib).

With a 2-d latent space, ``latent/scatter`` is an image: the codes as dots coloured by class
label over grey prior draws, on axes whose range is set by the prior (so it is the same at
every step of a run); codes outside it are pinned to the border. A strip of colour swatches
under the plot gives the label order 0, 1, 2, ... left to right. With more dimensions,
``latent/dim_<k>`` and ``latent/prior_dim_<k>`` are histograms of the first eight dimensions.
"""

from __future__ import annotations

import torch

# tab10, with its grey (reserved for the prior) replaced by black
PALETTE = (
    torch.tensor(
        [
            [0x1F, 0x77, 0xB4],
            [0xFF, 0x7F, 0x0E],
            [0x2C, 0xA0, 0x2C],
            [0xD6, 0x27, 0x28],
            [0x94, 0x67, 0xBD],
            [0x8C, 0x56, 0x4B],
            [0xE3, 0x77, 0xC2],
            [0x00, 0x00, 0x00],
            [0xBC, 0xBD, 0x22],
            [0x17, 0xBE, 0xCF],
        ]
    )
    / 255.0
)
PRIOR_GREY, AXIS_GREY = 0.75, 0.9
HISTOGRAM_DIMS = 8


def extent_of(prior: torch.Tensor) -> float:
    """Half-width of the square shown: a margin beyond 99.5% of the prior draws."""
    return 1.15 * float(prior.abs().float().quantile(0.995).clamp(min=1e-3))


def scatter_image(
    codes: torch.Tensor,
    labels: torch.Tensor,
    prior: torch.Tensor,
    extent: float,
    size: int = 256,
    dot: int = 1,
    swatch: int = 12,
) -> torch.Tensor:
    """RGB image [3, size + swatch, size] in [0, 1]: codes [N, 2] coloured by ``labels`` [N]
    over ``prior`` [M, 2] in grey, both over the square [-extent, extent]^2."""
    canvas = torch.ones(3, size, size)
    mid = (size - 1) // 2
    canvas[:, mid, :] = canvas[:, :, mid] = AXIS_GREY
    grey = torch.full((prior.shape[0], 3), PRIOR_GREY)
    _draw(canvas, _pixel_coords(prior.float().cpu(), extent, size), grey, dot)
    labels = labels.cpu().long()
    _draw(canvas, _pixel_coords(codes.float().cpu(), extent, size), PALETTE[labels % len(PALETTE)], dot)
    strip = torch.ones(3, swatch, size)
    classes = int(labels.max()) + 1 if labels.numel() else 0
    for k in range(min(classes, len(PALETTE))):
        strip[:, 2:-2, 2 + k * swatch : (k + 1) * swatch] = PALETTE[k].view(3, 1, 1)
    return torch.cat([canvas, strip], dim=1)


def _pixel_coords(points: torch.Tensor, extent: float, size: int) -> torch.Tensor:
    """[N, 2] (x, y) -> [N, 2] (row, col), y pointing up, clamped into the image."""
    scaled = ((points / extent + 1) / 2 * (size - 1)).round().long().clamp(0, size - 1)
    return torch.stack([size - 1 - scaled[:, 1], scaled[:, 0]], dim=1)


def _draw(canvas: torch.Tensor, pixels: torch.Tensor, colours: torch.Tensor, dot: int) -> None:
    """Square dots of side 2*dot+1; later points cover earlier ones."""
    size = canvas.shape[-1]
    flat = canvas.view(3, -1)
    for dr in range(-dot, dot + 1):
        for dc in range(-dot, dot + 1):
            rows = (pixels[:, 0] + dr).clamp(0, size - 1)
            cols = (pixels[:, 1] + dc).clamp(0, size - 1)
            flat[:, rows * size + cols] = colours.T


def write_latent_view(writer, codes: torch.Tensor, labels: torch.Tensor, prior: torch.Tensor, step: int) -> None:
    """Write the scatter (2-d codes) or the per-dimension histograms to a SummaryWriter."""
    codes, prior = codes.detach().float().cpu(), prior.detach().float().cpu()
    if codes.shape[1] == 2:
        writer.add_image("latent/scatter", scatter_image(codes, labels, prior, extent_of(prior)), step)
        return
    for k in range(min(HISTOGRAM_DIMS, codes.shape[1])):
        writer.add_histogram(f"latent/dim_{k}", codes[:, k], step)
        writer.add_histogram(f"latent/prior_dim_{k}", prior[:, k], step)
