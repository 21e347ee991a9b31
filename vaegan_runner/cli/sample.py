"""``vaegan-sample``: images from any checkpoint, as a PNG grid and an .npz of the images.

    vaegan-sample outputs/gan-mnist/2026-11-23_10-00-00 n=100
    vaegan-sample run_dir mode=reconstruct n=32 out=recon.png
    vaegan-sample run_dir mode=interpolate n=8 steps=12
    vaegan-sample run_dir mode=traverse n=10 steps=9   # one row per latent dimension
    vaegan-sample run_dir n=10000 format=png out=fakes/  # one PNG per image (torch-fidelity, clean-fid)
    vaegan-sample run_dir label=7 n=16                  # class-conditional runs: 16 sevens
    vaegan-sample run_dir mode=classes n=8              # one row of 8 per class, the same codes per column
    vaegan-sample run_dir mode=transfer n=8             # held-out images decoded with every label
    vaegan-sample run_dir mode=codes n=8                # InfoGAN (model.info_codes): a row per category of its code
    vaegan-sample run_dir prior=gmm n=100               # codes from a mixture fitted to the training codes

Modes: ``sample`` (prior draws, every family; of one class with ``label=``, conditional runs);
``reconstruct``, ``interpolate`` and ``traverse`` (held-out images through the encoder,
families with an encoder); ``classes`` (conditional runs) and ``transfer`` (conditional runs
with an encoder: each held-out image's code decoded with every label); ``codes`` (a GAN with
InfoGAN's code: one row per category, the same z per column). ``prior=gmm`` (families with an
encoder) draws the codes of ``sample`` and ``classes`` from a Gaussian mixture of
``prior_components`` fitted to the training images' codes (``models/fitted_prior.py``) instead
of the model's prior. The same seed gives the same images, in either format.

``format=grid`` (default) writes a PNG grid and an .npz of uint8 ``images`` [N, C, H, W]
with what made them (``z``, or the held-out ``inputs`` and ``labels``); ``out`` is the grid's
file name, or a folder to write it in; an ``n`` whose grid Pillow would not open is refused.
``format=png`` writes one PNG per generated image, ``000000.png`` on, into the folder ``out``,
for any ``n``: images are drawn and written ``eval.batch_size`` at a time (``sample_modes.py``).
Default names say what the images are (``step_00000020-sample-label3-n64-seed0.png``); an
existing output is replaced only with ``overwrite=true``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config.checks import ConfigError, one_of
from .args import parse_settings
from .sample_modes import MODES, Draw, Layout, Mode, as_uint8, check_family, take_held_out
from .saved_run import PRIOR_SETTINGS

FORMATS = ("grid", "png")
SETTINGS = {
    "mode": (str, "sample"),
    "n": (int, 64),  # samples; images to reconstruct; pairs to interpolate; dimensions to traverse
    "steps": (int, 10),  # images per interpolation or traversal row
    "seed": (int, 0),
    "label": (int, None),  # mode=sample of a class-conditional run: draw every image for this class
    "device": (str, None),
    "out": (str, None),  # grid: the PNG (or a folder for it), the .npz goes next to it; png: the folder
    "format": (str, "grid"),
    "checkpoint": (str, "last"),  # of a run directory: its newest checkpoint, or best.pt (checkpoint.keep_best)
    "overwrite": (bool, False),  # replace outputs of the same name (else: refused)
    **PRIOR_SETTINGS,
}
NUMBERED_PNG = re.compile(r"\d{6,}\.png")  # the files of format=png


@dataclass
class Written:
    images: int
    path: Path  # the grid's PNG, or format=png's folder
    npz: Path | None = None


def chunk_images(saved) -> int:
    """Images drawn through the networks at once: the run's own ``eval.batch_size``."""
    return saved.run.eval.batch_size


def check_settings(settings: dict) -> None:
    """The settings alone, before any checkpoint is read."""
    from .saved_run import PRIOR_CHOICES

    one_of(settings["mode"], MODES, "mode")
    one_of(settings["format"], FORMATS, "format")
    one_of(settings["prior"], PRIOR_CHOICES, "prior")
    for key in ("n", "steps"):
        if settings[key] <= 0:
            raise ConfigError(key, f"must be > 0, got {settings[key]}")
    if settings["prior"] == "gmm" and settings["mode"] not in ("sample", "classes"):
        why = (
            "draws InfoGAN's categories, which only a GAN (no encoder, so no codes to fit) has"
            if settings["mode"] == "codes"
            else "decodes the codes of held-out images, not prior draws"
        )
        raise ConfigError(
            "prior",
            f"prior=gmm draws the codes of mode=sample and mode=classes, and mode={settings['mode']} {why}; "
            "drop prior=",
        )


def output_name(step: int, settings: dict) -> str:
    """The default file (or folder) name: the checkpoint's step, then every setting that
    changes what is drawn, so two different sets never share a name."""
    mode = settings["mode"]
    parts = [f"step_{step:08d}", mode]
    if settings["label"] is not None:
        parts.append(f"label{settings['label']}")
    if settings["prior"] == "gmm":
        parts.append(f"gmm{settings['prior_components']}")
    parts.append(f"n{settings['n']}")
    if mode in ("interpolate", "traverse"):
        parts.append(f"steps{settings['steps']}")
    parts.append(f"seed{settings['seed']}")
    return "-".join(parts)


def check_place(path: Path) -> None:
    """``path`` can be written: no file where a folder on the way to it should be, and the
    nearest existing folder writable. A ConfigError on ``out`` otherwise."""
    existing = path if path.exists() else next(p for p in path.parents if p.exists())
    if existing != path and not existing.is_dir():
        raise ConfigError(
            "out",
            f"cannot write {path}: {existing} is a file, not a folder; give another out= (a new name or a folder)",
        )
    folder = existing if existing.is_dir() else existing.parent
    if not os.access(folder, os.W_OK):
        raise ConfigError("out", f"cannot write {path}: {folder} is not writable; give another out=")


def grid_path(out: str | None, default: Path) -> Path:
    """Where the grid goes: ``out`` as a .png file, the .png beside an .npz name, or a folder
    (an existing one, or a new name without a suffix) holding the default file name."""
    path = Path(out).expanduser() if out else default
    if out and (path.is_dir() or not path.suffix):
        if path.exists() and not path.is_dir():
            raise ConfigError(
                "out",
                f"{path} is an existing file without a suffix; out= is the grid's file name (.png, "
                "or .npz: both are written) or a folder to write them in (an existing folder, or a "
                "new name without a suffix)",
            )
        path = path / default.name
    elif out and path.suffix.lower() in (".png", ".npz"):
        path = path.with_suffix(".png")
    elif out:
        raise ConfigError(
            "out",
            f"format=grid writes a PNG and an .npz beside it, got {out!r}; give a .png or .npz file "
            "name or a folder (format=png writes one PNG per image into a folder)",
        )
    check_place(path)
    return path


def check_new(paths: list[Path], overwrite: bool) -> None:
    """Refuse to replace an earlier output unasked (``overwrite=true`` replaces files)."""
    for path in paths:
        if path.is_dir():
            raise ConfigError("out", f"{path} is a folder, where vaegan-sample would write a file; give another out=")
    existing = [str(path) for path in paths if path.exists()]
    if existing and not overwrite:
        raise ConfigError(
            "out",
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}, and vaegan-sample "
            "replaces no earlier output unasked; give another out=, or overwrite=true to replace "
            f"{'it' if len(existing) == 1 else 'them'}",
        )


def png_folder(out: str | None, default: Path, overwrite: bool) -> Path:
    """The folder of format=png: new, empty of PNG files, or (``overwrite=true``) holding an
    earlier set of numbered PNGs that the new set replaces; never a mix of two sets."""
    path = Path(out).expanduser() if out else default
    if path.exists() and not path.is_dir():
        raise ConfigError(
            "out",
            f"format=png writes one file per image into a folder, and {path} is a file; "
            "give a folder (an existing one, or a new name)",
        )
    if path.suffix and not path.is_dir():
        raise ConfigError(
            "out", f"format=png writes one PNG per image into a folder, got the file name {out!r}; give a folder name"
        )
    check_place(path)
    pngs = sorted(p.name for p in path.glob("*.png")) if path.is_dir() else []
    if pngs and not overwrite:
        raise ConfigError(
            "out",
            f"{path} already holds PNG files ({len(pngs)}); give an empty or new folder, so no image set mixes "
            "two runs, or overwrite=true to replace the set vaegan-sample wrote there",
        )
    foreign = [name for name in pngs if not NUMBERED_PNG.fullmatch(name)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(
            "out",
            f"{path} holds PNG files that vaegan-sample did not write ({shown}); overwrite=true replaces "
            "only its own numbered set, and these would mix into the new one: give an empty or new folder",
        )
    return path


def check_grid_fits(name: str, mode: Mode, settings: dict, saved) -> None:
    """format=grid holds every image in memory and writes one PNG: refuse an ``n`` whose grid
    is larger than Pillow opens (``PIL.Image.MAX_IMAGE_PIXELS``), naming the largest n that fits."""
    from PIL import Image

    limit, size = Image.MAX_IMAGE_PIXELS, saved.run.dataset.image_size
    n, steps, family = settings["n"], settings["steps"], saved.family
    layout = mode.layout(n, steps, family)
    if limit is None or layout.grid_pixels(size) <= limit:
        return
    fits, too_many = 0, n  # bisect the largest n whose grid fits
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if mode.layout(middle, steps, family).grid_pixels(size) <= limit:
            fits = middle
        else:
            too_many = middle
    at_most = (
        f"n<={fits} (the largest grid at {size}x{size} pixels)"
        if fits
        else f"a smaller steps= (even n=1 is too large with steps={steps})"
    )
    raise ConfigError(
        "n",
        f"format=grid puts all {layout.images} images of mode={name} n={n} into one PNG of "
        f"{layout.grid_pixels(size)} pixels, more than Pillow opens ({limit}, PIL.Image.MAX_IMAGE_PIXELS), "
        f"and holds them all in memory; use format=png, which draws and writes {chunk_images(saved)} images "
        f"at a time for any n, or {at_most}",
    )


def draw_pieces(mode: Mode, d: Draw, layout: Layout, chunk: int):
    """(first unit, ``Piece``) of each chunk, drawn as it is asked for."""
    import torch

    step = mode.chunk_units(layout, chunk)
    for start in range(0, layout.units, step):
        with torch.no_grad():
            piece = mode.draw(d, start, min(layout.units, start + step))
        yield start, piece


def write_grid(pieces, mode: Mode, layout: Layout, d: Draw, out: Path) -> Written:
    """The PNG grid of the table and the .npz of its images (uint8 [N, C, H, W]) with what made them."""
    import torch
    from PIL import Image
    from torchvision.utils import make_grid

    parts: list[torch.Tensor] = []
    arrays: dict[str, list[np.ndarray]] = {}
    for _, piece in pieces:
        parts.append(as_uint8(piece.grid))
        for key, value in piece.arrays.items():
            arrays.setdefault(key, []).append(value)
    images = torch.cat(parts, dim=mode.axis).flatten(0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = make_grid(images, nrow=layout.row, padding=2, pad_value=255)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(out)
    npz = out.with_suffix(".npz")
    joined = {key: np.concatenate(values) for key, values in arrays.items()}
    np.savez_compressed(npz, images=images.numpy(), **joined, **mode.constants(d))  # type: ignore[arg-type]  # no key is allow_pickle
    return Written(images.shape[0], out, npz)


def write_png_set(pieces, mode: Mode, layout: Layout, folder: Path) -> Written:
    """One PNG per generated image, numbered in table order, each chunk written as it is drawn;
    an earlier numbered set in ``folder`` (``overwrite=true``) is removed first."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()  # png_folder let only an earlier numbered set (overwrite=true) through
    written, width = 0, None
    for start, piece in pieces:
        generated = as_uint8(piece.generated).numpy()  # [A, B, C, H, W], a row (or column) per unit
        rows, columns = generated.shape[:2]
        if width is None:
            total = layout.units * (columns if mode.axis == 0 else rows)
            width = max(6, len(str(total - 1)))
        for r in range(rows):
            for c in range(columns):
                index = (start + r) * columns + c if mode.axis == 0 else r * layout.units + start + c
                image = generated[r, c]
                plane = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
                Image.fromarray(plane).save(folder / f"{index:0{width}d}.png")
                written += 1
    return Written(written, folder)


def sample_checkpoint(target: str, pairs: list[str]) -> Written:
    import torch

    from ..data import load_data
    from .saved_run import ex_post_prior, load_saved_run

    settings, overrides = parse_settings(pairs, SETTINGS)
    check_settings(settings)
    name = settings["mode"]
    mode = MODES[name]
    saved = load_saved_run(target, overrides, settings["device"], with_data=False, which=settings["checkpoint"])
    check_family(saved, name, settings["label"])
    default = saved.run_dir / "samples" / output_name(saved.step, settings)
    if settings["format"] == "grid":
        out = grid_path(settings["out"], default.with_suffix(".png"))
        check_new([out, out.with_suffix(".npz")], settings["overwrite"])
        check_grid_fits(name, mode, settings, saved)
    else:
        out = png_folder(settings["out"], default, settings["overwrite"])
    fitted = settings["prior"] == "gmm"
    if mode.held_out or fitted:
        saved.data = load_data(saved.run.dataset, saved.family.device)
    prior = ex_post_prior(saved, settings["prior"], settings["prior_components"], saved.run.eval.batch_size)
    torch.manual_seed(settings["seed"])
    d = Draw(saved, settings["n"], settings["steps"], settings["seed"], settings["label"], prior)
    if mode.held_out:
        take_held_out(d, name)
    layout = mode.layout(d.n, d.steps, saved.family)
    pieces = draw_pieces(mode, d, layout, chunk_images(saved))
    if settings["format"] == "grid":
        return write_grid(pieces, mode, layout, d, out)
    return write_png_set(pieces, mode, layout, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vaegan-sample",
        description=__doc__.split("\n\n")[0],
        epilog=f"settings: {', '.join(f'{k}=' for k in SETTINGS)}, dataset.<key>=; modes: {', '.join(MODES)}; "
        f"formats: {', '.join(FORMATS)}",
    )
    parser.add_argument("target", help="a run directory or a checkpoint file")
    parser.add_argument("settings", nargs="*", help="key=value")
    args = parser.parse_args(argv)
    try:
        written = sample_checkpoint(args.target, args.settings)
    except (ConfigError, OSError) as err:
        print(f"vaegan-sample: error: {err}", file=sys.stderr)
        return 2
    if written.npz:
        print(f"{written.images} images: {written.path} and {written.npz}")
    else:
        print(f"{written.images} images in {written.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
