"""Checkpoints: everything a run needs to continue as if it had never stopped.

A checkpoint holds the family's weights (EMA copies included), each optimizer's state, the
loss scaler, the step counter, every RNG state and the resolved config. Files are written
to a temporary name, fsynced and renamed, so a crash mid-save never leaves a torn file under
a checkpoint's name; loading never unpickles code (``weights_only=True``).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d+)\.pt$")


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
    }


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def save_checkpoint(state: dict, path: Path, keep_last: int) -> None:
    """Write ``state`` atomically to ``path``; then keep only the ``keep_last`` newest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in list_checkpoints(path.parent)[:-keep_last]:
        old.unlink()


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def find_checkpoint(target: str | Path) -> Path:
    """``target`` is a checkpoint file or a run directory (its newest checkpoint)."""
    target = Path(target).expanduser()
    if target.is_file():
        return target
    if target.is_dir():
        found = list_checkpoints(target / CHECKPOINT_DIR) or list_checkpoints(target)
        if found:
            return found[-1]
        raise ConfigError("resume", f"no checkpoint (checkpoints/step_*.pt) in run directory {target}")
    raise ConfigError("resume", f"{target} does not exist; give a checkpoint file or a run directory")


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint without executing any pickled code."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, corrupt, or a pickle that wants to run code
        raise ConfigError("resume", f"{path} is not a readable vaegan-runner checkpoint "
                          f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or "family" not in state or "config" not in state:
        raise ConfigError("resume", f"{path} is not a vaegan-runner checkpoint")
    return state


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == CHECKPOINT_DIR else parent
