"""What each of ``vaegan-sample``'s modes draws, one chunk at a time.

A mode's output is a table of images: the PNG grid shows it row by row, and ``format=png``
writes its generated images one file each. A mode draws that table in *units* (an image, a
column of classes, a pair to interpolate), a chunk of units at a time, so no more than one
chunk's images pass through the networks at once; ``MODES`` maps each mode's name to how it
lays out its table (``Layout``) and how it draws a chunk (``Piece``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config.checks import ConfigError

if TYPE_CHECKING:  # imported when used, for the CLI's startup
    from ..models import Family
    from ..models.fitted_prior import ExPostPrior
    from .saved_run import SavedRun


@dataclass(frozen=True)
class Layout:
    """A mode's table for its settings: ``units`` drawn, each ``per_unit`` images of the grid,
    shown ``row`` images to a grid row."""

    units: int
    per_unit: int
    row: int

    @property
    def images(self) -> int:
        return self.units * self.per_unit

    def grid_pixels(self, image_size: int, padding: int = 2) -> int:
        """Pixels of the PNG grid (torchvision's ``make_grid`` layout, ``padding`` between images)."""
        across = min(self.row, self.images)
        down = math.ceil(self.images / across)
        return (down * (image_size + padding) + padding) * (across * (image_size + padding) + padding)


@dataclass
class Draw:
    """One vaegan-sample call's drawing: the saved run, the settings, the stream of prior draws
    (one generator over all chunks, so a seed gives the same images in every format) and, for
    the modes that encode held-out images, those images."""

    saved: SavedRun
    n: int
    steps: int
    seed: int
    label: int | None = None
    prior: ExPostPrior | None = None  # of prior=gmm; None: the family's own p(z)
    inputs: torch.Tensor | None = None  # held-out uint8 images (modes that encode)
    labels: torch.Tensor | None = None
    generator: torch.Generator | None = field(default=None, repr=False)

    @property
    def family(self) -> Family:
        return self.saved.family

    def latent(self, m: int) -> torch.Tensor:
        """The next ``m`` draws of the codes (the prior's, or the fitted mixture's)."""
        if self.generator is None:
            self.generator = torch.Generator(self.family.device).manual_seed(self.seed)
        sample_latent = self.family.sample_latent if self.prior is None else self.prior.sample_latent
        return sample_latent(m, self.generator)

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        from ..data.pixels import to_unit

        return to_unit(x, self.family.pixel_range)

    def pixels(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out images ``start:stop`` as the model sees them, and their labels."""
        from ..data.pixels import to_pixels

        assert self.inputs is not None and self.labels is not None  # take_held_out set them
        return to_pixels(self.inputs[start:stop], self.family.pixel_range), self.labels[start:stop]

    def encode(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The family's codes of ``x`` (the modes that encode: check_family refuses a family
        without an encoder)."""
        codes = self.family.encode(x, labels)
        assert codes is not None  # check_family: the family has an encoder
        return codes


@dataclass
class Piece:
    """What a chunk of units draws: ``grid`` [A, B, C, H, W] in [0, 1], its part of the table
    (a unit is a row, or with the mode's ``axis=1`` a column); ``generated``, the same for the
    generated images alone (no held-out input: what ``format=png`` writes), one row (or column)
    per unit; ``arrays`` for the .npz, joined with the other chunks' along their first axis."""

    grid: torch.Tensor
    generated: torch.Tensor
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def as_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 0..255, rounded."""
    return (x * 255).round().to(torch.uint8).cpu()


# --- the modes --------------------------------------------------------------------------------------


def draw_sample(d: Draw, start: int, stop: int) -> Piece:
    family, m = d.family, stop - start
    z = d.latent(m)
    y = None
    if family.conditional:  # label=, else 0, 1, ..., K-1, 0, ... over the whole set
        asked = torch.arange(start, stop, device=family.device) % classes_of(family)
        y = asked if d.label is None else torch.full((m,), d.label, device=family.device)
    images = d.unit(family.generate(z, y))[:, None]
    labels = {} if y is None else {"labels": y.cpu().numpy()}
    return Piece(images, images, {"z": z.cpu().numpy(), **labels})


def draw_classes(d: Draw, start: int, stop: int) -> Piece:
    from ..models.latent_paths import class_grid

    z = d.latent(stop - start)
    images = d.unit(class_grid(d.family, z)).unflatten(0, (d.family.num_classes, stop - start))
    return Piece(images, images, {"z": z.cpu().numpy()})


def draw_codes(d: Draw, start: int, stop: int) -> Piece:
    z = d.latent(stop - start)
    grid = d.family.code_grid(z)
    assert grid is not None  # check_family: the family has a code (code_categories)
    images = d.unit(grid).unflatten(0, (d.family.code_categories, stop - start))
    return Piece(images, images, {"z": z.cpu().numpy()})


def draw_reconstruct(d: Draw, start: int, stop: int) -> Piece:
    """Grid: blocks of a row of inputs over a row of their reconstructions (chunks hold whole blocks)."""
    x, labels = d.pixels(start, stop)
    recon = d.unit(d.family.generate(d.encode(x, labels), labels))
    x, row = d.unit(x), min(8, d.n)
    blocks = [torch.cat([x[i : i + row], recon[i : i + row]]) for i in range(0, x.shape[0], row)]
    return Piece(torch.cat(blocks)[:, None], recon[:, None], {"reconstructions": as_uint8(recon).numpy()})


def draw_transfer(d: Draw, start: int, stop: int) -> Piece:
    """Row i: held-out image i, then its code decoded with labels 0..K-1."""
    from ..models.latent_paths import class_grid

    x, labels = d.pixels(start, stop)
    k = d.family.num_classes
    decoded = d.unit(class_grid(d.family, d.encode(x, labels)))
    decoded = decoded.unflatten(0, (k, stop - start)).transpose(0, 1)  # [m, K]
    rows = torch.cat([d.unit(x)[:, None], decoded], dim=1)
    return Piece(rows, decoded, {"decoded": as_uint8(decoded.flatten(0, 1)).numpy()})


def draw_interpolate(d: Draw, start: int, stop: int) -> Piece:
    """Row i: ``steps`` decodings on the line from held-out image i's code to image pairs+i's."""
    from ..models.latent_paths import interpolate

    assert d.inputs is not None  # take_held_out set them
    pairs = d.inputs.shape[0] // 2
    a, labels = d.pixels(start, stop)
    b, b_labels = d.pixels(pairs + start, pairs + stop)
    path = interpolate(d.family, d.encode(a, labels), d.encode(b, b_labels), d.steps, labels)
    images = d.unit(path).unflatten(0, (stop - start, d.steps))
    return Piece(images, images)


def draw_traverse(d: Draw, start: int, stop: int) -> Piece:
    """Row j: the first held-out image's code swept along dimension j (one pass: at most
    ``latent_dim`` rows)."""
    from ..models.latent_paths import traverse

    x, labels = d.pixels(0, 1)
    code = d.encode(x, labels)[0]
    images = d.unit(traverse(d.family, code, stop, d.steps, label=int(labels[0]))).unflatten(0, (stop, d.steps))
    return Piece(images, images)


@dataclass(frozen=True)
class Mode:
    """How a mode lays out its table and draws it, a chunk of units at a time."""

    draw: Callable[[Draw, int, int], Piece]  # the units start:stop
    layout: Callable[[int, int, Family], Layout]  # (n, steps, family) -> the table
    axis: int = 0  # 0: a unit is a row of the table; 1: a column
    held_out: Callable[[int], int] | None = None  # n -> the held-out images it encodes (None: it draws from the prior)
    one_pass: bool = False  # every unit in one chunk
    whole_rows: bool = False  # chunks hold whole grid rows
    constants: Callable[[Draw], dict] = lambda d: {}  # .npz arrays fixed by the settings

    def chunk_units(self, layout: Layout, chunk_images: int) -> int:
        """Units per chunk: at most ``chunk_images`` images through the networks at once."""
        if self.one_pass:
            return layout.units
        units = max(1, chunk_images // layout.per_unit)
        return max(layout.row, units - units % layout.row) if self.whole_rows else units


def held_out_arrays(d: Draw) -> dict:
    assert d.inputs is not None and d.labels is not None  # take_held_out set them
    return {"inputs": d.inputs.cpu().numpy(), "labels": d.labels.cpu().numpy()}


def classes_of(family: Family) -> int:
    """The classes of a class-conditional family (the class modes: check_family refuses the others)."""
    assert family.num_classes is not None  # check_family: a conditional run
    return family.num_classes


def category_labels(key: str, categories: Callable) -> Callable[[Draw], dict]:
    """The .npz's per-image category (``labels``, ``codes``) of a table with a row per category."""
    return lambda d: {key: torch.arange(categories(d.family)).repeat_interleave(d.n).numpy()}


MODES: dict[str, Mode] = {
    "sample": Mode(draw_sample, lambda n, steps, f: Layout(n, 1, max(1, int(n**0.5)))),
    "reconstruct": Mode(
        draw_reconstruct,
        lambda n, steps, f: Layout(n, 2, min(8, n)),
        held_out=lambda n: n,
        whole_rows=True,
        constants=held_out_arrays,
    ),
    "interpolate": Mode(
        draw_interpolate,
        lambda n, steps, f: Layout(n, steps, steps),
        held_out=lambda n: 2 * n,
        constants=held_out_arrays,
    ),
    "traverse": Mode(
        draw_traverse,
        lambda n, steps, f: Layout(min(n, f.latent_dim), steps, steps),
        held_out=lambda n: 1,
        one_pass=True,
        constants=held_out_arrays,
    ),
    "classes": Mode(
        draw_classes,
        lambda n, steps, f: Layout(n, classes_of(f), n),
        axis=1,
        constants=category_labels("labels", lambda f: f.num_classes),
    ),
    "transfer": Mode(
        draw_transfer,
        lambda n, steps, f: Layout(n, classes_of(f) + 1, classes_of(f) + 1),
        held_out=lambda n: n,
        constants=held_out_arrays,
    ),
    "codes": Mode(
        draw_codes,
        lambda n, steps, f: Layout(n, f.code_categories, n),
        axis=1,
        constants=category_labels("codes", lambda f: f.code_categories),
    ),
}
CONDITIONAL_MODES = ("classes", "transfer")


def check_family(saved, mode: str, label: int | None) -> None:
    """Refuse, before any drawing, what this run cannot draw: ``label=`` and the class modes
    without a class-conditional run (or with a label it does not know), ``codes`` without
    InfoGAN's code, the held-out modes without an encoder."""
    family, model = saved.family, saved.run.model.name
    if (label is not None or mode in CONDITIONAL_MODES) and not family.conditional:
        key, what = ("label", f"label={label}") if label is not None else ("mode", f"mode={mode}")
        raise ConfigError(
            key,
            f"{what} draws images for a class, and this {model} run was trained without labels "
            "(model.conditional=false); train with model.conditional=true, or leave it out",
        )
    if label is not None:
        if mode != "sample":
            raise ConfigError("label", f"label= picks the class of mode=sample, got mode={mode}; leave it out")
        if not 0 <= label < family.num_classes:
            raise ConfigError("label", f"must be a class of the dataset, 0..{family.num_classes - 1}, got {label}")
    if mode == "transfer" and not family.has_encoder:
        raise ConfigError(
            "mode", f"mode=transfer decodes the codes of held-out images, and model={model} has no encoder"
        )
    if mode == "codes" and not family.code_categories:
        raise ConfigError(
            "mode",
            f"mode=codes draws a row per category of InfoGAN's code, and this {model} run has none "
            "(a GAN trained with model.info_codes=K has one); use mode=sample",
        )
    if MODES[mode].held_out and not family.has_encoder:
        raise ConfigError(
            "mode",
            f"mode={mode} needs an encoder, and model={model} has none; allowed for this model: mode=sample"
            + (", classes" if family.conditional else "")
            + (", codes" if family.code_categories else ""),
        )


def take_held_out(d: Draw, mode: str) -> Draw:
    """The held-out images ``mode`` encodes, into ``d``; ``d.n`` shrinks, with a note on stderr,
    when the split holds fewer than n asks for."""
    import sys

    held_out = MODES[mode].held_out
    assert held_out is not None  # called for the modes that encode held-out images
    wanted = held_out(d.n)
    per_unit = max(1, wanted // d.n)  # interpolate: 2 (a pair); traverse takes one image, never short
    assert d.saved.data is not None  # loaded for the modes that encode held-out images
    d.inputs, d.labels = d.saved.data.test.take(wanted)
    have = d.inputs.shape[0]
    if have == 0:
        raise ConfigError("mode", f"mode={mode} encodes held-out images, and the held-out split has none")
    if mode == "interpolate" and have < 2:
        raise ConfigError(
            "mode",
            f"mode=interpolate walks between pairs of held-out images, and the held-out split has "
            f"{have}; use mode=sample, reconstruct or traverse",
        )
    if have < wanted:
        what = {"reconstruct": "images to reconstruct", "interpolate": "pairs", "transfer": "images"}[mode]
        print(
            f"vaegan-sample: n={d.n}, but the held-out split has {have} images: {have // per_unit} {what}",
            file=sys.stderr,
        )
        d.n = have // per_unit
    return d
