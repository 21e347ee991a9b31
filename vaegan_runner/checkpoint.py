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
import warnings
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
    """Write ``state`` atomically to ``path``; then keep only the ``keep_last`` newest.

    A failed write (a full disk, a vanished mount) removes its temporary file and leaves every
    earlier checkpoint as it was; the error names the last good one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        kept = list_checkpoints(path.parent)
        raise ConfigError("checkpoint", f"could not write {path} ({err.strerror or err}); "
                          + (f"the last good checkpoint {kept[-1]} is intact" if kept else "no checkpoint was kept")
                          + "; free space or fix the run directory, then continue with resume=auto") from None
    for stale in path.parent.glob("*.pt.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    for old in list_checkpoints(path.parent)[:-keep_last]:
        old.unlink()


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def find_checkpoint(target: str | Path, key: str = "resume") -> Path:
    """``target`` is a checkpoint file or a run directory (its newest checkpoint); errors
    name ``key``, the setting that gave the path."""
    target = Path(target).expanduser()
    if target.is_file():
        return target
    if target.is_dir():
        found = list_checkpoints(target / CHECKPOINT_DIR) or list_checkpoints(target)
        if found:
            return found[-1]
        raise ConfigError(key, f"no checkpoint (checkpoints/step_*.pt) in run directory {target}")
    raise ConfigError(key, f"{target} does not exist; give a checkpoint file or a run directory")


def load_checkpoint(path: Path, map_location="cpu", key: str = "resume") -> dict:
    """Load a checkpoint without executing any pickled code."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, corrupt, or a pickle that wants to run code
        text = str(err)
        give = "Give a checkpoint written by vaegan-train (checkpoints/step_*.pt) or its run directory"
        if "Weights only load failed" in text:  # torch's weights-only unpickler refused the file
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            if found:
                raise ConfigError(key, f"{path} is not a readable vaegan-runner checkpoint: it holds pickled "
                                  f"Python objects other than tensors and plain values (it asks for "
                                  f"{found.group(1)}), and unpickling those can run any code, so it was not "
                                  f"loaded. {give}, from a source you trust") from None
            detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
            raise ConfigError(key, f"{path} is not a readable vaegan-runner checkpoint: it is not the file of "
                              "tensors and plain values that vaegan-train writes (torch's weights-only loader: "
                              f"{' '.join(detail.group(1).split())[:120] if detail else 'refused'}); other pickles "
                              f"are never loaded, since they can run code. {give}") from None
        first = re.split(r"(?<=\.)\s", " ".join(text.split()))[0][:200]  # the first sentence, on one line
        raise ConfigError(key, f"{path} is not a readable vaegan-runner checkpoint ({type(err).__name__}: "
                          f"{first}); it is truncated or corrupt. {give}; a run directory resumes from its "
                          "newest readable checkpoint") from None
    if not isinstance(state, dict) or not isinstance(state.get("family"), dict) \
            or not isinstance(state.get("config"), dict):
        raise ConfigError(key, f"{path} is not a vaegan-runner checkpoint (it lacks the networks' weights or "
                          "the run's config); give a checkpoint written by vaegan-train (checkpoints/step_*.pt) "
                          "or its run directory")
    return state


def check_resumable(state: dict, run_cfg) -> None:
    """Refuse, before any data is loaded, a checkpoint this run's config cannot continue from:
    another family, dataset, image size, channel count or latent size (from the checkpoint's
    ``meta``), or networks of other shapes (the family this config builds, made on the meta
    device: no memory and no time, compared weight by weight with the checkpoint's). The
    errors name the checkpoint's value and this run's."""
    from .models import family_class

    meta = state["meta"] if isinstance(state.get("meta"), dict) else {}
    here = {"model": run_cfg.model.name, "dataset": run_cfg.dataset.name, "image_size": run_cfg.dataset.image_size,
            "channels": run_cfg.dataset.channels, "latent_dim": run_cfg.model.latent_dim}
    option = {"model": "model", "dataset": "dataset", "image_size": "dataset.image_size",
              "channels": "dataset.channels", "latent_dim": "model.latent_dim"}
    differ = [key for key, value in here.items() if key in meta and meta[key] != value]
    if differ:
        theirs = " ".join(f"{option[key]}={meta[key]}" for key in differ)
        ours = " ".join(f"{option[key]}={here[key]}" for key in differ)
        same = " ".join(f"{option[key]}={meta[key]}" for key in option if key in meta)
        raise ConfigError("resume", f"the checkpoint was written with {theirs}, but this run has {ours}; resume "
                          f"with the checkpoint's settings ({same}), or start a fresh run without resume=")
    with torch.device("meta"):
        family = family_class(run_cfg.model.name)(run_cfg.model, run_cfg.dataset.channels,
                                                   run_cfg.dataset.image_size)
    wanted = {name: tuple(getattr(t, "shape", ())) for name, t in family.state_dict().items()}
    saved = {name: tuple(getattr(t, "shape", ())) for name, t in state["family"].items()}
    if wanted == saved:
        return
    shapes = [f"{name} is {list(saved[name])} in the checkpoint and {list(wanted[name])} here"
              for name in wanted if name in saved and saved[name] != wanted[name]]
    shapes += [f"{name} is missing from the checkpoint" for name in wanted if name not in saved]
    shapes += [f"the checkpoint has {name}, which this config's networks lack" for name in saved if name not in wanted]
    settings = _differences(state.get("config", {}).get("model", {}), run_cfg.resolved.get("model", {}), "model")
    changed = "; ".join(f"{key} is {a!r} in the checkpoint and {b!r} here" for key, a, b in settings)
    raise ConfigError("resume", f"the checkpoint's networks do not fit the ones this config builds "
                      f"({'; '.join(shapes[:2])}{f'; {len(shapes) - 2} more' if len(shapes) > 2 else ''})"
                      f"{f'. Model settings that differ: {changed}' if changed else ''}. Resume with the "
                      "checkpoint's model settings, or start a fresh run without resume=")


def _differences(theirs, ours, prefix: str) -> list[tuple[str, object, object]]:
    """(dotted key, checkpoint's value, this run's value) for every leaf that differs."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        return [diff for key in sorted(set(theirs) | set(ours), key=str)
                for diff in _differences(theirs.get(key), ours.get(key), f"{prefix}.{key}")]
    return [] if theirs == ours else [(prefix, theirs, ours)]


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == CHECKPOINT_DIR else parent
