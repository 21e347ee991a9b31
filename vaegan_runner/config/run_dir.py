"""The run directory: made and probed by one process, removed only if this runner made it.

Under ``torchrun`` every rank runs Hydra and so reaches the same run directory. Only rank 0
(``RANK`` unset or 0) probes whether it can be written; the other ranks leave the making to
Hydra's ``mkdir(exist_ok=True)``, which is safe to race. Each probe file carries the process
id, so two probes never delete each other's file.

A run that ends with nothing in its directory but Hydra's bookkeeping (a config error, a
resumed run that wrote into its original directory) removes that directory, and the empty
parents up to ``outputs/``, but only the folders that did not exist before the command
started: a user's own folder named by ``hydra.run.dir`` is never removed. The folders made
are remembered in the environment, so the jobs a launcher runs in other processes know them.

One run per folder: ``run_dir_check.py``'s Hydra callback takes the folder's lock
(``config/run_lock.py``) before Hydra writes anything into it, and refuses a folder that another
live run holds.

A run directory keeps its checkpoints in ``CHECKPOINT_DIR``; ``run_dir_of`` gives the run
directory of a checkpoint file (plain path logic, so ``resume=`` is read without importing torch).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .checks import ConfigError

CREATED = "VAEGAN_CREATED_DIRS"  # folders this command made, os.pathsep-separated
CHECKPOINT_DIR = "checkpoints"  # <run dir>/checkpoints/step_*.pt (training/checkpoint.py)


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == CHECKPOINT_DIR else parent


def is_main_process() -> bool:
    """Rank 0 under torchrun, or a plain process."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def make_dir(folder: Path) -> None:
    """``mkdir -p folder``, remembering which of its folders did not exist before."""
    folder = folder.expanduser().absolute()
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    if missing:
        known = [p for p in os.environ.get(CREATED, "").split(os.pathsep) if p]
        os.environ[CREATED] = os.pathsep.join(known + [str(p) for p in missing])


def created_by_runner(folder: Path) -> bool:
    """Whether ``folder`` is, or lies inside, a folder this command made."""
    folder = folder.expanduser().absolute()
    made = [Path(p) for p in os.environ.get(CREATED, "").split(os.pathsep) if p]
    return any(folder == m or m in folder.parents for m in made)


def unwritable_dir_error(path: str | Path, key: str) -> ConfigError | None:
    """Make ``path`` and write a probe file in it; the ConfigError to raise if that fails."""
    folder = Path(path).expanduser()
    probe = folder / f".write-test-{os.getpid()}"
    try:
        make_dir(folder)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else (err.strerror or str(err))
        return ConfigError(
            key,
            f"cannot create or write the run directory {folder.absolute()} ({reason}); "
            f"choose another with {key}=<path>, or fix the path or its permissions",
        )
    return None


def remove_if_empty_run(output_dir: Path) -> None:
    """Delete a run directory that this command made and that holds nothing but Hydra's own
    bookkeeping, then its parents (``outputs/<model>-<dataset>/``, ``outputs/``) while they
    are empty and were made by this command too. Never on a rank other than 0."""
    output_dir = output_dir.absolute()
    if not is_main_process() or not created_by_runner(output_dir) or not output_dir.is_dir():
        return
    from .run_lock import LOCK_NAME

    if not all(p.name in (".hydra", LOCK_NAME) or p.suffix == ".log" for p in output_dir.iterdir()):
        return
    shutil.rmtree(output_dir, ignore_errors=True)
    for parent in list(output_dir.parents)[:2]:
        if not created_by_runner(parent):
            break
        try:
            parent.rmdir()  # only if empty
        except OSError:
            break


def check_run_dir(path: str, key: str, prog: str = "vaegan-train") -> None:
    """Make ``path`` (as Hydra is about to); print one paragraph and exit 2 if that fails.
    Under torchrun only rank 0 makes and probes it; the others let Hydra make it."""
    if not is_main_process():
        return
    error = unwritable_dir_error(path, key)
    if error is not None:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.stderr.flush()
        sys.exit(2)
