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
of the model's prior. The same seed gives
the same images. ``format=grid`` (default) writes a PNG grid and an .npz of uint8
``images`` [N, C, H, W] with what made them (``z``, or the held-out ``inputs`` and
``labels``); ``out`` is the grid's file name, or a folder to write it in. ``format=png``
writes one PNG per image, ``000000.png`` on, into the folder ``out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..config.checks import ConfigError, one_of
from .args import parse_settings
from .saved_run import PRIOR_SETTINGS

MODES = ("sample", "reconstruct", "interpolate", "traverse", "classes", "transfer", "codes")
CONDITIONAL_MODES = ("classes", "transfer")
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
    **PRIOR_SETTINGS,
}


def as_uint8(x) -> np.ndarray:
    return (x * 255).round().byte().cpu().numpy()


def check_labels(saved, mode: str, label: int | None) -> None:
    """``label=`` and the class modes need a class-conditional run, and a label it knows."""
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


def make_images(saved, mode: str, n: int, steps: int, seed: int, label: int | None = None, prior=None) -> tuple:
    """(images in [0,1], grid row length, arrays for the .npz); ``prior``: an ``ExPostPrior``
    to draw the codes of ``sample`` and ``classes`` from (None: the family's own)."""
    import torch

    from ..data.pixels import to_pixels, to_unit
    from ..models.latent_paths import class_grid, interpolate, traverse

    family = saved.family
    unit = lambda x: to_unit(x, family.pixel_range)  # noqa: E731
    torch.manual_seed(seed)
    check_labels(saved, mode, label)
    if mode in ("sample", "classes", "codes"):
        sample_latent = family.sample_latent if prior is None else prior.sample_latent
        z = sample_latent(n, torch.Generator(family.device).manual_seed(seed))
        with torch.no_grad():
            if mode == "codes":
                by_code = family.code_grid(z)
                if by_code is None:
                    raise ConfigError(
                        "mode",
                        f"mode=codes draws a row per category of InfoGAN's code, and this {saved.run.model.name} "
                        "run has none (a GAN trained with model.info_codes=K has one); use mode=sample",
                    )
                codes = torch.arange(by_code.shape[0] // n).repeat_interleave(n)
                return unit(by_code), n, {"z": z.cpu().numpy(), "codes": codes.numpy()}
            if mode == "classes":
                labels = torch.arange(family.num_classes).repeat_interleave(n)
                return unit(class_grid(family, z)), n, {"z": z.cpu().numpy(), "labels": labels.numpy()}
            y = None if label is None else torch.full((n,), label, device=family.device)
            y = family.labels_or_balanced(n, y)
            images = unit(family.generate(z, y))
        labels = {} if y is None else {"labels": y.cpu().numpy()}
        return images, max(1, int(n**0.5)), {"z": z.cpu().numpy(), **labels}
    one_of(mode, MODES, "mode")
    if not family.has_encoder:
        raise ConfigError(
            "mode",
            f"mode={mode} needs an encoder, and model={saved.run.model.name} has none; "
            "allowed for this model: mode=sample"
            + (", classes" if family.conditional else "")
            + (", codes" if family.code_categories else ""),
        )
    wanted = {"reconstruct": n, "interpolate": 2 * n, "traverse": 1, "transfer": n}[mode]
    inputs, labels = saved.data.test.take(wanted)
    if mode == "interpolate" and inputs.shape[0] < 2:
        raise ConfigError(
            "mode",
            f"mode=interpolate walks between pairs of held-out images, and the held-out split has "
            f"{inputs.shape[0]}; use mode=sample, reconstruct or traverse",
        )
    if inputs.shape[0] < wanted:
        what = {"reconstruct": "images to reconstruct", "interpolate": "pairs", "transfer": "images"}[mode]
        print(
            f"vaegan-sample: n={n}, but the held-out split has {inputs.shape[0]} images: "
            f"{inputs.shape[0] // 2 if mode == 'interpolate' else inputs.shape[0]} {what}",
            file=sys.stderr,
        )
        n = inputs.shape[0] // 2 if mode == "interpolate" else inputs.shape[0]
    x = to_pixels(inputs, family.pixel_range)
    codes = family.encode(x, labels)
    extra = {"inputs": inputs.cpu().numpy(), "labels": labels.cpu().numpy()}
    if mode == "transfer":  # row i: the input, then its code decoded with labels 0..K-1
        decoded = class_grid(family, codes).view(family.num_classes, n, *x.shape[1:]).transpose(0, 1)
        rows = torch.cat([x[:, None], decoded], dim=1)
        return (
            unit(rows.flatten(0, 1)),
            family.num_classes + 1,
            {**extra, "decoded": as_uint8(unit(decoded.flatten(0, 1)))},
        )
    if mode == "reconstruct":
        recon = family.generate(codes, labels)
        row = min(8, n)
        pairs = [x[i : i + row] for i in range(0, n, row)], [recon[i : i + row] for i in range(0, n, row)]
        images = torch.cat([torch.cat([a, b]) for a, b in zip(*pairs)])
        return unit(images), row, {**extra, "reconstructions": as_uint8(unit(recon))}
    if mode == "interpolate":
        pairs = codes.shape[0] // 2
        path = interpolate(family, codes[:pairs], codes[pairs : 2 * pairs], steps, labels[:pairs])
        return unit(path), steps, extra
    dims = min(n, family.latent_dim)
    return unit(traverse(family, codes[0], dims, steps, label=int(labels[0]))), steps, extra


def grid_path(out: str | None, default: Path) -> Path:
    """Where the grid goes: ``out`` as a .png file, the .png beside an .npz name, or a folder
    (an existing one, or a name without a suffix) holding the default file name."""
    if not out:
        return default
    path = Path(out).expanduser()
    if path.is_dir() or not path.suffix:
        return path / default.name
    if path.suffix.lower() in (".png", ".npz"):
        return path.with_suffix(".png")
    raise ConfigError(
        "out",
        f"format=grid writes a PNG and an .npz beside it, got {out!r}; give a .png or .npz file "
        "name or a folder (format=png writes one PNG per image into a folder)",
    )


def png_folder(out: str | None, default: Path) -> Path:
    if not out:
        return default
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError("out", f"format=png writes one file per image into a folder, and {out} is a file")
    if path.suffix and not path.is_dir():
        raise ConfigError(
            "out", f"format=png writes one PNG per image into a folder, got the file name {out!r}; give a folder name"
        )
    if path.is_dir() and any(path.glob("*.png")):
        raise ConfigError(
            "out", f"{out} already holds PNG files; give an empty or new folder, so no image set mixes two runs"
        )
    return path


def write_pngs(pixels: np.ndarray, folder: Path) -> Path:
    """One PNG per uint8 image [N, C, H, W]."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(pixels):
        plane = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(plane).save(folder / f"{i:06d}.png")
    return folder


def sample_checkpoint(target: str, pairs: list[str]) -> tuple[Path, Path | None, int]:
    from torchvision.utils import save_image

    from .saved_run import PRIOR_CHOICES, ex_post_prior, load_saved_run

    settings, overrides = parse_settings(pairs, SETTINGS)
    one_of(settings["mode"], MODES, "mode")
    one_of(settings["format"], FORMATS, "format")
    one_of(settings["prior"], PRIOR_CHOICES, "prior")
    for key in ("n", "steps"):
        if settings[key] <= 0:
            raise ConfigError(key, f"must be > 0, got {settings[key]}")
    fitted = settings["prior"] == "gmm"
    if fitted and settings["mode"] not in ("sample", "classes"):
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
    saved = load_saved_run(
        target,
        overrides,
        settings["device"],
        with_data=fitted or settings["mode"] not in ("sample", "classes"),
        which=settings["checkpoint"],
    )
    check_labels(saved, settings["mode"], settings["label"])  # before a mixture is fitted
    prior = ex_post_prior(saved, settings["prior"], settings["prior_components"], saved.run.eval.batch_size)
    suffix = f"-gmm{settings['prior_components']}" if fitted else ""
    default = saved.run_dir / "samples" / f"step_{saved.step:08d}-{settings['mode']}{suffix}"
    if settings["format"] == "png":
        folder = png_folder(settings["out"], default)
        images, _, arrays = make_images(
            saved, settings["mode"], settings["n"], settings["steps"], settings["seed"], settings["label"], prior
        )
        # generated images alone: the held-out inputs of the grid would mix real images into the set
        generated = {"reconstruct": "reconstructions", "transfer": "decoded"}.get(settings["mode"])
        pixels = arrays[generated] if generated else as_uint8(images)
        return write_pngs(pixels, folder), None, pixels.shape[0]
    out = grid_path(settings["out"], default.with_suffix(".png"))
    images, row, arrays = make_images(
        saved, settings["mode"], settings["n"], settings["steps"], settings["seed"], settings["label"], prior
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float().cpu(), out, nrow=row, padding=2, pad_value=1.0)
    npz = out.with_suffix(".npz")
    np.savez_compressed(npz, images=as_uint8(images), **arrays)
    return out, npz, images.shape[0]


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
        png, npz, count = sample_checkpoint(args.target, args.settings)
    except (ConfigError, OSError) as err:
        print(f"vaegan-sample: error: {err}", file=sys.stderr)
        return 2
    print(f"{count} images: {png} and {npz}" if npz else f"{count} images in {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
