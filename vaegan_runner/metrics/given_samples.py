"""Samples that did not come from a run: a folder of image files or an .npz, scored like a
run's own samples (``vaegan-eval samples=DIR dataset=mnist``).

``GivenSamples`` stands where a family stands in an evaluation: its "latents" are indices,
so the n samples an evaluation draws are the first n images, in file-name order. It has no
encoder and no likelihood, so the metrics that need a model are not offered.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..config.checks import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class GivenSamples:
    display_name = "given samples (no model)"  # in the reasons a metric is skipped
    network_names: tuple[str, ...] = ()
    has_likelihood = False
    conditional = False  # drawn for no particular class
    pixel_range = "unit"

    def __init__(self, images: torch.Tensor, device: torch.device):
        self.images, self.device, self.training = images.to(device), device, False

    def __len__(self) -> int:
        return self.images.shape[0]

    def eval(self) -> GivenSamples:
        return self

    def train(self, mode: bool = True) -> GivenSamples:
        return self

    def sample_latent(self, n: int, generator=None) -> torch.Tensor:
        return torch.arange(n, device=self.device)

    def sample_labels(self, n: int) -> None:
        return None

    def generate(self, index: torch.Tensor, y: None = None) -> torch.Tensor:
        return self.images[index].float() / 255


NPZ_FORMAT = (
    "an .npz for samples= must hold an array 'images' of uint8 pixels 0..255, shaped [N, C, H, W], "
    "[N, H, W, C] or [N, H, W] (one channel), as vaegan-sample writes it (np.savez(path, images=...))"
)


def load_samples(path: str | Path, channels: int, image_size: int) -> torch.Tensor:
    """uint8 images [N, channels, image_size, image_size] from a folder of image files (sorted
    by name) or an .npz holding ``images`` (``NPZ_FORMAT``); anything else is a ConfigError on
    ``samples`` naming the path and what it must hold."""
    path = Path(path).expanduser()
    if path.is_dir():
        images = _read_folder(path, channels)
    elif path.suffix.lower() == ".npz" and path.is_file():
        images = _read_npz(path, channels)
    elif not path.exists():
        raise ConfigError(
            "samples",
            f"{path} does not exist; give a folder of image files ({', '.join(IMAGE_SUFFIXES)}) or an .npz file: "
            f"{NPZ_FORMAT}",
        )
    else:
        raise ConfigError(
            "samples",
            f"{path} is a file but not an .npz; give a folder of image files ({', '.join(IMAGE_SUFFIXES)}) "
            f"or an .npz file: {NPZ_FORMAT}",
        )
    if images.shape[0] == 0:
        raise ConfigError("samples", f"{path} holds no images (its 'images' array has N=0); {NPZ_FORMAT}")
    if images.shape[1:] != (channels, image_size, image_size):
        raise ConfigError(
            "samples",
            f"the images in {path} are {images.shape[1]}x{images.shape[2]}x{images.shape[3]}, the dataset's are "
            f"{channels}x{image_size}x{image_size}; write samples at the dataset's size (or set dataset.image_size=)",
        )
    return torch.from_numpy(np.ascontiguousarray(images))


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def _read_folder(folder: Path, channels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        nested = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and _has_images(p)]
        if nested:
            shown = ", ".join(nested[:3]) + (", ..." if len(nested) > 3 else "")
            raise ConfigError(
                "samples",
                f"{folder} holds no image files itself; its images are in sub-folders ({shown}): "
                "give one flat folder of images",
            )
        raise ConfigError("samples", f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    mode = "L" if channels == 1 else "RGB"
    arrays = []
    for file in files:
        try:
            with Image.open(file) as image:
                arrays.append(np.asarray(image.convert(mode)))
        except (UnidentifiedImageError, OSError) as err:
            raise ConfigError("samples", f"cannot read {file} as an image ({err})") from None
    if len({a.shape for a in arrays}) > 1:
        raise ConfigError("samples", f"the images in {folder} differ in size; give one size for all")
    stacked = np.stack(arrays)
    return stacked[:, None] if channels == 1 else stacked.transpose(0, 3, 1, 2)


def _read_npz(file: Path, channels: int) -> np.ndarray:
    """The ``images`` array of ``file``, as [N, C, H, W]; a file that is not a readable .npz (cut
    short, another format renamed, pickled objects, which are never loaded) or whose ``images``
    is not uint8 images is a ConfigError naming the file and ``NPZ_FORMAT``."""
    if not zipfile.is_zipfile(file):  # an .npz is a zip archive of .npy files
        with open(file, "rb") as head:
            npy = head.read(6) == b"\x93NUMPY"
        what = "holds one bare array (an .npy file)" if npy else "is not a zip archive (cut short, or another format)"
        raise ConfigError("samples", f"{file} is not an .npz: it {what}; {NPZ_FORMAT}")
    try:
        with np.load(file, allow_pickle=False) as arrays:
            names = list(arrays.files)
            images = arrays["images"] if "images" in names else None
    except Exception as err:  # noqa: BLE001 -- whatever numpy or zipfile raise, the archive is damaged
        first = " ".join(str(err).split())[:160]
        raise ConfigError(
            "samples", f"{file} is not a readable .npz ({type(err).__name__}: {first}); {NPZ_FORMAT}"
        ) from None
    if images is None:
        raise ConfigError(
            "samples", f"{file} has no 'images' array (it has: {', '.join(names) or 'none'}); {NPZ_FORMAT}"
        )
    if images.dtype != np.uint8:
        raise ConfigError("samples", f"{file}: 'images' is {images.dtype}, not uint8; {NPZ_FORMAT}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[1] != channels and images.shape[-1] == channels:
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4:
        raise ConfigError("samples", f"{file}: 'images' has shape {list(images.shape)}; {NPZ_FORMAT}")
    return images
