"""The checkpoint file: what it holds, where it lives, and writing and reading it safely.

A checkpoint (``Checkpoint``) holds the family's weights (EMA copies included), each
optimizer's state, the loss scaler, the step counter, every RNG state (``rng_state.py``), the
resolved config and the version of the runner that wrote it (``runner_version``; absent from
checkpoints written before 0.2.0, which still load). Config keys added since a checkpoint was
written are filled in as it is read (``checkpoint_migrations.py``); whether a run can continue
from it is ``resume_check.py``'s question.
Files are written to a temporary name, fsynced and renamed, so a crash mid-save never leaves a
torn file under a checkpoint's name; loading never unpickles code (``weights_only=True``).
"""

from __future__ import annotations

import re
import warnings
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from ..atomic_write import atomic_open, stale_temporaries
from ..config.checks import ConfigError
from ..config.run_dir import CHECKPOINT_DIR
from ..version import BEFORE_VERSIONS, __version__
from .checkpoint_migrations import with_added_keys

BEST_NAME = "best.pt"  # checkpoint.keep_best
_NAME = re.compile(r"^step_(\d+)\.pt$")
_GIVE = "Give a checkpoint written by vaegan-train (checkpoints/step_*.pt) or its run directory"
# the class torch.load raises when its weights-only unpickler refuses a file (pickle's own)
UnpicklingError = torch.serialization.pickle.UnpicklingError


class CheckpointWriteError(ConfigError):
    """A checkpoint could not be written (a full disk, a vanished mount); earlier ones are intact."""


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
    rng: dict | None = None  # ``rng_state.rng_state()``
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
