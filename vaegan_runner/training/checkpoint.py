"""Checkpoints: everything a run needs to continue as if it had never stopped.

A checkpoint (``Checkpoint``) holds the family's weights (EMA copies included), each
optimizer's state, the loss scaler, the step counter, every RNG state, the resolved config and
the version of the runner that wrote it (``runner_version``; absent from checkpoints written
before 0.2.0, which still load).
Files are written to a temporary name, fsynced and renamed, so a crash mid-save never leaves a
torn file under a checkpoint's name; loading never unpickles code (``weights_only=True``).
"""

from __future__ import annotations

import logging
import random
import re
import warnings
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from omegaconf import OmegaConf

from ..atomic_write import atomic_open, stale_temporaries
from ..config.checks import ConfigError
from ..version import BEFORE_VERSIONS, __version__

CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best.pt"  # checkpoint.keep_best
_NAME = re.compile(r"^step_(\d+)\.pt$")
_GIVE = "Give a checkpoint written by vaegan-train (checkpoints/step_*.pt) or its run directory"
# the class torch.load raises when its weights-only unpickler refuses a file (pickle's own)
UnpicklingError = torch.serialization.pickle.UnpicklingError


class CheckpointWriteError(ConfigError):
    """A checkpoint could not be written (a full disk, a vanished mount); earlier ones are intact."""


ADDED_KEYS = {  # key added since the first checkpoints -> the value that behaves as before it existed
    "optimizer.schedule": {
        "name": "constant",
        "warmup_steps": 0,
        "final_factor": 0.0,
        "step_every": None,
        "milestones": None,
        "gamma": 0.5,
    },
    "checkpoint.keep_best": False,
    "model.conditional": False,
    "eval.inception_reference": "test",
    "eval.iwae_max_images": None,
}
DATASET_ADDED_KEYS: dict[
    str, dict[str, Any]
] = {  # the same, for the keys of one dataset's config (a family's: its class's added_keys)
    **{name: {"dataset.labelled": None} for name in ("mnist", "fashion_mnist", "shapes")},
    "cifar10": {"dataset.labelled": None, "dataset.source": "batches"},
}


def family_added_keys(name) -> dict:
    """The ``added_keys`` of the family ``name`` (``models.base.Family``), as full config keys
    (``model.prior``); none for a name this installation has no family of, whose checkpoint
    is then refused by the config's validation, which names the families there are."""
    from ..models import family_class

    if not isinstance(name, str):
        return {}
    try:
        family = family_class(name)
    except ConfigError:
        return {}
    return {f"model.{key}": value for key, value in family.added_keys.items()}


def with_added_keys(config: dict) -> dict:
    """``config`` (a resolved run config) with every key of ``ADDED_KEYS`` (and of its family's
    ``added_keys`` and dataset's ``DATASET_ADDED_KEYS``) it lacks."""
    node = OmegaConf.create(config)
    family = OmegaConf.select(node, "model.name", default=None)
    dataset = OmegaConf.select(node, "dataset.name", default=None)
    added = {**ADDED_KEYS, **family_added_keys(family), **DATASET_ADDED_KEYS.get(dataset, {})}
    for key, value in added.items():
        if OmegaConf.select(node, key, default="<absent>") == "<absent>":
            OmegaConf.update(node, key, value, force_add=True)
    return cast(dict, OmegaConf.to_container(node))  # made from a dict: a dict


@dataclass(frozen=True)
class RunMeta:
    """What the checkpoint was trained on, checked before resuming (None: not recorded)."""

    model: str | None = None
    dataset: str | None = None
    channels: int | None = None
    image_size: int | None = None
    latent_dim: int | None = None
    num_classes: int | None = None  # the dataset's classes (a conditional family's networks depend on them)
    conditional: bool | None = None  # model.conditional
    labelled: int | None = None  # dataset.labelled (None: every label, or not recorded)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, meta) -> RunMeta:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in meta.items() if k in names}) if isinstance(meta, dict) else cls()


@dataclass
class Checkpoint:
    """A checkpoint's contents; ``to_dict`` / ``from_dict`` give the layout on disk."""

    family: dict  # the family's state_dict
    config: dict  # the resolved config
    step: int
    optimizers: dict = field(default_factory=dict)  # state_dict by network name
    scaler: dict = field(default_factory=dict)
    rng: dict | None = None  # ``rng_state()``
    meta: RunMeta = field(default_factory=RunMeta)
    rollbacks: int = 0  # trainer.on_nonfinite=rollback: rollbacks used so far
    schedulers: dict = field(default_factory=dict)  # learning-rate schedule state by network name
    best: dict | None = None  # checkpoint.keep_best: {"metric", "value", "step"} of the best so far
    runner_version: str | None = __version__  # the runner that wrote it; None: before 0.2.0

    @property
    def written_by(self) -> str:
        """The version of the runner that wrote this checkpoint, or ``BEFORE_VERSIONS``."""
        return self.runner_version or BEFORE_VERSIONS

    def to_dict(self) -> dict:
        return {
            "runner_version": self.runner_version,
            "rollbacks": self.rollbacks,
            "family": self.family,
            "optimizers": self.optimizers,
            "scaler": self.scaler,
            "step": self.step,
            "rng": self.rng,
            "config": self.config,
            "meta": self.meta.to_dict(),
            "schedulers": self.schedulers,
            "best": self.best,
        }

    @classmethod
    def from_dict(cls, state: dict) -> Checkpoint:
        return cls(
            family=state["family"],
            config=with_added_keys(state["config"]),
            step=int(state["step"]),
            optimizers=state.get("optimizers", {}),
            scaler=state.get("scaler", {}),
            rng=state.get("rng"),
            meta=RunMeta.from_dict(state.get("meta")),
            rollbacks=int(state.get("rollbacks", 0)),
            schedulers=state.get("schedulers") or {},
            best=state.get("best"),
            runner_version=state.get("runner_version"),  # absent before 0.2.0
        )


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


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def best_path(run_dir: Path) -> Path:
    """Where ``checkpoint.keep_best`` keeps the best checkpoint (not one of ``list_checkpoints``)."""
    return Path(run_dir) / CHECKPOINT_DIR / BEST_NAME


def save_checkpoint(saved: Checkpoint, path: Path, keep_last: int) -> None:
    """Write ``saved`` atomically to ``path``; then keep only the ``keep_last`` newest.

    A failed write (a full disk, a vanished mount) removes its temporary file and leaves every
    earlier checkpoint as it was; the error names the last good one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_open(path, fsync=True) as f:  # removes its temporary file if the write fails
            torch.save(saved.to_dict(), f)
    except OSError as err:
        kept = list_checkpoints(path.parent)
        raise CheckpointWriteError(
            "checkpoint",
            f"could not write {path} ({err.strerror or err}); "
            + (f"the last good checkpoint {kept[-1]} is intact" if kept else "no checkpoint was kept")
            + "; free space or fix the run directory, then continue with resume=auto",
        ) from None
    for stale in stale_temporaries(path.parent, ".pt"):  # left by a process killed mid-write
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
    """A checkpoint's dict as it is on disk (see ``Checkpoint``), loaded without executing any
    pickled code; a file that is not one raises ``ConfigError`` naming ``key``."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except UnpicklingError as err:  # torch's weights-only unpickler refused what the file holds
        raise ConfigError(key, _refused_pickle(path, err)) from None
    except Exception as err:  # noqa: BLE001 -- whatever else fails, the file is truncated or corrupt
        first = re.split(r"(?<=\.)\s", " ".join(str(err).split()))[0][:200]  # the first sentence, on one line
        raise ConfigError(
            key,
            f"{path} is not a readable vaegan-runner checkpoint ({type(err).__name__}: "
            f"{first}); it is truncated or corrupt. {_GIVE}; a run directory resumes from its "
            "newest readable checkpoint",
        ) from None
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("family"), dict)
        or not isinstance(state.get("config"), dict)
    ):
        raise ConfigError(
            key,
            f"{path} is not a vaegan-runner checkpoint (it lacks the networks' weights or "
            "the run's config); give a checkpoint written by vaegan-train (checkpoints/step_*.pt) "
            "or its run directory",
        )
    return state


def read_checkpoint(path: Path, map_location="cpu", key: str = "resume") -> Checkpoint:
    """``load_checkpoint`` as a ``Checkpoint``."""
    return Checkpoint.from_dict(load_checkpoint(path, map_location, key))


def _refused_pickle(path: Path, err: Exception) -> str:
    """Why the weights-only loader refused ``path``: the globals it asks for that torch does not
    allow (read from the zip file's pickle without running it), else the loader's own reason."""
    unsafe = []
    list_globals = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch >= 2.5
    if list_globals is not None and zipfile.is_zipfile(path):
        try:
            unsafe = sorted(list_globals(path))
        except (EOFError, ValueError, RuntimeError, UnpicklingError):  # a pickle too broken to scan
            unsafe = []
    if unsafe:
        return (
            f"{path} is not a readable vaegan-runner checkpoint: it holds pickled Python objects other than "
            f"tensors and plain values (it asks for {', '.join(unsafe[:3])}), and unpickling those can run "
            f"any code, so it was not loaded. {_GIVE}, from a source you trust"
        )
    reason = " ".join(str(err.__context__ or "refused").split())[:120]  # torch chains its unpickler's error
    return (
        f"{path} is not a readable vaegan-runner checkpoint: it is not the file of tensors and plain values "
        f"that vaegan-train writes (torch's weights-only loader: {reason}); other pickles are never "
        f"loaded, since they can run code. {_GIVE}"
    )


def check_resumable(saved: Checkpoint | dict, run_cfg) -> None:
    """Refuse, before any data is loaded, a checkpoint this run's config cannot continue from:
    another family, dataset, image size, channel count or latent size (from the checkpoint's
    ``meta``), or networks of other shapes (the family this config builds, made on the meta
    device: no memory and no time, compared weight by weight with the checkpoint's). The
    errors name the checkpoint's value and this run's. ``saved`` may be the dict on disk."""
    from ..models import family_class

    if isinstance(saved, dict):
        saved = Checkpoint.from_dict(saved)
    meta = {key: value for key, value in saved.meta.to_dict().items() if value is not None}
    here = {
        "model": run_cfg.model.name,
        "dataset": run_cfg.dataset.name,
        "image_size": run_cfg.dataset.image_size,
        "channels": run_cfg.dataset.channels,
        "latent_dim": run_cfg.model.latent_dim,
        "conditional": run_cfg.model.conditional,
        "labelled": getattr(run_cfg.dataset, "labelled", None),
    }
    option = {
        "model": "model",
        "dataset": "dataset",
        "image_size": "dataset.image_size",
        "channels": "dataset.channels",
        "latent_dim": "model.latent_dim",
        "conditional": "model.conditional",
        "labelled": "dataset.labelled",
    }
    differ = [key for key, value in here.items() if key in meta and meta[key] != value]
    if differ:
        theirs = " ".join(f"{option[key]}={meta[key]}" for key in differ)
        ours = " ".join(f"{option[key]}={here[key]}" for key in differ)
        same = " ".join(f"{option[key]}={meta[key]}" for key in option if key in meta)
        raise ConfigError(
            "resume",
            f"the checkpoint was written with {theirs}, but this run has {ours}; resume "
            f"with the checkpoint's settings ({same}), or start a fresh run without resume=",
        )
    with torch.device("meta"):
        family = family_class(run_cfg.model.name)(
            run_cfg.model, run_cfg.dataset.channels, run_cfg.dataset.image_size, saved.meta.num_classes
        )
    wanted = {name: tuple(getattr(t, "shape", ())) for name, t in family.state_dict().items()}
    in_checkpoint = {name: tuple(getattr(t, "shape", ())) for name, t in saved.family.items()}
    if wanted == in_checkpoint:
        return
    shapes = [
        f"{name} is {list(in_checkpoint[name])} in the checkpoint and {list(wanted[name])} here"
        for name in wanted
        if name in in_checkpoint and in_checkpoint[name] != wanted[name]
    ]
    shapes += [f"{name} is missing from the checkpoint" for name in wanted if name not in in_checkpoint]
    shapes += [
        f"the checkpoint has {name}, which this config's networks lack" for name in in_checkpoint if name not in wanted
    ]
    changed = "; ".join(setting_changes(saved.config.get("model", {}), run_cfg.resolved.get("model", {}), "model"))
    raise ConfigError(
        "resume",
        f"the checkpoint's networks do not fit the ones this config builds "
        f"({'; '.join(shapes[:2])}{f'; {len(shapes) - 2} more' if len(shapes) > 2 else ''})"
        f"{f'. Model settings that differ: {changed}' if changed else ''}. Resume with the "
        "checkpoint's model settings, or start a fresh run without resume=",
    )


def warn_if_other_version(saved: Checkpoint | dict, log: logging.Logger | None = None) -> str | None:
    """When ``saved`` was written by another version of the runner than this one, log one
    warning that names both (defaults and the checkpoint format change between versions:
    CHANGELOG.md says how) and return it; None when the versions match. ``saved`` may be the
    dict on disk."""
    if isinstance(saved, dict):
        saved = Checkpoint.from_dict(saved)
    if saved.runner_version == __version__:
        return None
    message = (
        f"resuming a checkpoint written by vaegan-runner {saved.written_by} with vaegan-runner "
        f"{__version__}; CHANGELOG.md lists what changed between them"
    )
    (log or logging.getLogger("vaegan_runner")).warning(message)
    return message


def setting_changes(theirs, ours, prefix: str) -> list[str]:
    """'<dotted key> is <checkpoint's value> in the checkpoint and <this run's> here' for every
    leaf that differs; a group whose ``name`` differs (``model``: gan and bigan) as one line,
    since every key under it differs by that."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        if "name" in theirs and "name" in ours and theirs["name"] != ours["name"]:
            return [f"{prefix} is {theirs['name']!r} in the checkpoint and {ours['name']!r} here"]
        return [
            change
            for key in sorted(set(theirs) | set(ours), key=str)
            for change in setting_changes(theirs.get(key), ours.get(key), f"{prefix}.{key}")
        ]
    return [] if theirs == ours else [f"{prefix} is {theirs!r} in the checkpoint and {ours!r} here"]


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == CHECKPOINT_DIR else parent
