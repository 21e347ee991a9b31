"""Where the run computes and in which precision."""

from __future__ import annotations

import contextlib
import logging
import os

import torch

from ..config.checks import ConfigError

log = logging.getLogger(__name__)
AMP_MODES = ("off", "bf16", "fp16")


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """``auto`` = cuda, then mps, then cpu; or an explicit cpu | cuda | cuda:N | mps. Under
    torchrun (``local_rank`` given) CUDA means this process's own GPU, ``cuda:<local_rank>``."""
    if local_rank is not None and spec in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError("device", f"got {spec!r}; allowed: auto, cpu, cuda, cuda:N, mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", f"{spec} asked for, but torch sees no CUDA device; use device=auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError("device", f"{spec} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", "mps asked for, but it is not available; use device=auto or cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError("device", f"got {spec!r}; allowed: auto, cpu, cuda, cuda:N, mps")
    return device


class Precision:
    """Autocast and loss scaling for ``trainer.amp`` (CUDA only; ignored elsewhere with a warning)."""

    def __init__(self, mode: str, device: torch.device):
        if mode != "off" and device.type != "cuda":
            log.warning("trainer.amp=%s is ignored on %s: mixed precision runs on CUDA only", mode, device.type)
            mode = "off"
        self.mode, self.device = mode, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.scaler = torch.amp.GradScaler(device.type, enabled=(mode == "fp16"))

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic)  # set both ways: these flags are process-wide
    # CPU convolutions (oneDNN); not covered above
    torch.backends.mkldnn.deterministic = deterministic  # type: ignore[assignment]  # typed as its ContextProp
