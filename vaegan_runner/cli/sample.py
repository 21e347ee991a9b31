"""``vaegan-sample``: images from any checkpoint, as a PNG grid and an .npz of the images.

    vaegan-sample outputs/gan-mnist/2026-11-23_10-00-00 n=100
    vaegan-sample run_dir mode=reconstruct n=32 out=recon.png
    vaegan-sample run_dir mode=interpolate n=8 steps=12
    vaegan-sample run_dir mode=traverse n=10 steps=9   # one row per latent dimension

Modes: ``sample`` (prior draws, every family); ``reconstruct``, ``interpolate`` and
``traverse`` (held-out images through the encoder, families with an encoder). The same seed
gives the same images. The .npz holds uint8 ``images`` [N, C, H, W] and what made them
(``z``, or the held-out ``inputs`` and ``labels``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..config.checks import ConfigError, one_of
from .args import parse_settings

MODES = ("sample", "reconstruct", "interpolate", "traverse")
SETTINGS = {
    "mode": (str, "sample"),
    "n": (int, 64),  # samples; images to reconstruct; pairs to interpolate; dimensions to traverse
    "steps": (int, 10),  # images per interpolation or traversal row
    "seed": (int, 0),
    "device": (str, None),
    "out": (str, None),  # the PNG; the .npz goes next to it
    "checkpoint": (str, "last"),  # of a run directory: its newest checkpoint, or best.pt (checkpoint.keep_best)
}


def as_uint8(x) -> np.ndarray:
    return (x * 255).round().byte().cpu().numpy()


def make_images(saved, mode: str, n: int, steps: int, seed: int) -> tuple:
    """(images in [0,1], grid row length, arrays for the .npz)."""
    import torch

    from ..data.pixels import to_pixels, to_unit
    from ..models.latent_paths import interpolate, traverse

    family = saved.family
    unit = lambda x: to_unit(x, family.pixel_range)  # noqa: E731
    torch.manual_seed(seed)
    if mode == "sample":
        z = family.sample_latent(n, torch.Generator(family.device).manual_seed(seed))
        with torch.no_grad():
            images = unit(family.generate(z))
        return images, max(1, int(n**0.5)), {"z": z.cpu().numpy()}
    one_of(mode, MODES, "mode")
    if not family.has_encoder:
        raise ConfigError(
            "mode",
            f"mode={mode} needs an encoder, and model={saved.run.model.name} has none; "
            "allowed for this model: mode=sample",
        )
    wanted = {"reconstruct": n, "interpolate": 2 * n, "traverse": 1}[mode]
    inputs, labels = saved.data.test.take(wanted)
    x = to_pixels(inputs, family.pixel_range)
    codes = family.encode(x)
    extra = {"inputs": inputs.cpu().numpy(), "labels": labels.cpu().numpy()}
    if mode == "reconstruct":
        recon = family.generate(codes)
        row = min(8, n)
        pairs = [x[i : i + row] for i in range(0, n, row)], [recon[i : i + row] for i in range(0, n, row)]
        images = torch.cat([torch.cat([a, b]) for a, b in zip(*pairs)])
        return unit(images), row, {**extra, "reconstructions": as_uint8(unit(recon))}
    if mode == "interpolate":
        pairs = codes.shape[0] // 2
        return unit(interpolate(family, codes[:pairs], codes[pairs : 2 * pairs], steps)), steps, extra
    dims = min(n, family.latent_dim)
    return unit(traverse(family, codes[0], dims, steps)), steps, extra


def sample_checkpoint(target: str, pairs: list[str]) -> tuple[Path, Path, int]:
    from torchvision.utils import save_image

    from .saved_run import load_saved_run

    settings, overrides = parse_settings(pairs, SETTINGS)
    one_of(settings["mode"], MODES, "mode")
    for key in ("n", "steps"):
        if settings[key] <= 0:
            raise ConfigError(key, f"must be > 0, got {settings[key]}")
    saved = load_saved_run(
        target, overrides, settings["device"], with_data=settings["mode"] != "sample", which=settings["checkpoint"]
    )
    images, row, arrays = make_images(saved, settings["mode"], settings["n"], settings["steps"], settings["seed"])
    out = (
        Path(settings["out"])
        if settings["out"]
        else saved.run_dir / "samples" / f"step_{saved.step:08d}-{settings['mode']}.png"
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
        epilog=f"settings: {', '.join(f'{k}=' for k in SETTINGS)}, dataset.<key>=; modes: {', '.join(MODES)}",
    )
    parser.add_argument("target", help="a run directory or a checkpoint file")
    parser.add_argument("settings", nargs="*", help="key=value")
    args = parser.parse_args(argv)
    try:
        png, npz, count = sample_checkpoint(args.target, args.settings)
    except (ConfigError, OSError) as err:
        print(f"vaegan-sample: error: {err}", file=sys.stderr)
        return 2
    print(f"{count} images: {png} and {npz}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
