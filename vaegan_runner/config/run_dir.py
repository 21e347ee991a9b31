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

One run per folder: ``RunDirCheck`` takes the folder's lock (``config/run_lock.py``) before
Hydra writes anything into it, and refuses a folder that another live run holds.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, cast

from .checks import ConfigError

CREATED = "VAEGAN_CREATED_DIRS"  # folders this command made, os.pathsep-separated


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


class RunDirCheck:
    """A Hydra callback (``hydra.callbacks.run_dir._target_: vaegan_runner.config.run_dir.RunDirCheck``)
    that stops the command with one line and exit code 2, before Hydra writes into the folder,
    when the run directory cannot be made or written (a path under a regular file, a read-only
    disk, no permission), is in use by another live run (``config/run_lock.py``; a sweep's folder
    likewise), is the folder of a run that ``resume=<dir or file>`` names and that still runs, or,
    for a single run, holds the checkpoints of a run that this one does not continue. Hydra creates
    the directory before any of the task's code runs and would otherwise end with a traceback and
    exit code 1. Hydra's callback plumbing turns exceptions into warnings, so this exits itself.
    The folders held are given back when the run or sweep ends (or the process does).
    """

    def on_run_start(self, config, **kwargs) -> None:
        resumed = resumed_run_dir(config)
        if resumed is not None:
            exit_if_held(resumed, "resume", "resume")
        exit_if_held(config.hydra.run.dir, "hydra.run.dir", "run")
        check_run_dir(config.hydra.run.dir, "hydra.run.dir")
        check_run_dir_is_free(config, Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        exit_if_held(config.hydra.sweep.dir, "hydra.sweep.dir", "sweep")
        check_run_dir(config.hydra.sweep.dir, "hydra.sweep.dir")

    def on_run_end(self, config, **kwargs) -> None:
        from .run_lock import release_all

        release_all()

    def on_multirun_end(self, config, **kwargs) -> None:
        from .run_lock import release

        release(config.hydra.sweep.dir)

    def on_job_start(self, config, **kwargs) -> None: ...  # a multirun job's folder: train.run takes it

    def on_job_end(self, config, **kwargs) -> None: ...


def exit_if_held(folder: str | Path, key: str, purpose: str, prog: str = "vaegan-train") -> None:
    """Take ``folder`` for this process (``run_lock.hold``); print one paragraph naming the
    holder and exit 2 when another live run holds it. A folder that cannot be made or written
    is left to ``check_run_dir``, which says why. Only rank 0 under torchrun takes it."""
    if not is_main_process():
        return
    from .run_lock import hold

    try:
        hold(folder, key, purpose)
    except OSError:
        return
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.stderr.flush()
        sys.exit(2)


def resumed_run_dir(config) -> Path | None:
    """The run folder that ``resume=`` names (a run directory, or a checkpoint file in one), or
    None for no resume, ``resume=auto`` (found later, by ``train.run``) or a path that is not there."""
    from omegaconf import OmegaConf

    try:
        target = OmegaConf.select(config, "resume")
    except Exception:
        return None
    if not isinstance(target, str) or target in ("", "auto"):
        return None
    path = Path(target).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        from ..training.checkpoint import run_dir_of  # imports torch: only when a file is named

        return run_dir_of(path)
    return None


def check_run_dir_is_free(config, run_dir: Path, key: str, prog: str = "vaegan-train") -> None:
    """Print one paragraph and exit 2 when ``run_dir`` holds checkpoints of a run that this one
    (``config``, the whole composed config) does not continue, before Hydra overwrites that
    run's record there (``.hydra/``, the log). A config that does not resolve is left to the
    run's own validation, which names what is wrong with it."""
    if not is_main_process() or not (Path(run_dir) / "checkpoints").is_dir():
        return
    from omegaconf import OmegaConf

    from ..training.resume import continues_run_in, refuse_foreign_checkpoints

    try:
        resolved = cast(
            dict[str, Any],  # a masked DictConfig: a dict
            OmegaConf.to_container(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]), resolve=True),
        )
    except Exception:
        return
    if continues_run_in(Path(run_dir), resolved):
        return
    try:
        refuse_foreign_checkpoints(Path(run_dir), resolved, key)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.stderr.flush()
        sys.exit(2)


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
