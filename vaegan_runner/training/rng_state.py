"""Every random number generator's state, saved into a checkpoint and restored from one.

``rng_state`` gathers torch's (CPU and every CUDA device), Python's ``random`` and NumPy's
global generators into tensors and plain values, which a checkpoint stores and loads with
``weights_only=True``; ``restore_rng_state`` sets them back, so a resumed run draws the same
numbers as one that never stopped.
"""

from __future__ import annotations

import random
from typing import cast

import numpy as np
import torch


def rng_state() -> dict:
    # legacy=True, the default (numpy's stubs give legacy=False's dict): MT19937's tuple
    np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
    }


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
