"""The run folder checked before Hydra writes into it: Hydra's callback ``RunDirCheck``.

Hydra makes the run directory and writes its record (``.hydra/``, the log) before any of the
task's code runs, so what must be refused before that (a folder another live run holds, one that
cannot be written, the checkpoints of another run) is refused here, from Hydra's callback, with
one paragraph and exit code 2. It reads the whole package (the resume rules of
``training/resume.py``), which is why it lives outside ``config/``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

from .config.checks import ConfigError
from .config.run_dir import CHECKPOINT_DIR, check_run_dir, is_main_process, run_dir_of


class RunDirCheck:
    """A Hydra callback (``hydra.callbacks.run_dir._target_: vaegan_runner.run_dir_check.RunDirCheck``)
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
        from .config.run_lock import release_all

        release_all()

    def on_multirun_end(self, config, **kwargs) -> None:
        from .config.run_lock import release

        release(config.hydra.sweep.dir)

    def on_job_start(self, config, **kwargs) -> None: ...  # a multirun job's folder: train.run takes it

    def on_job_end(self, config, **kwargs) -> None: ...


def exit_if_held(folder: str | Path, key: str, purpose: str, prog: str = "vaegan-train") -> None:
    """Take ``folder`` for this process (``run_lock.hold``); print one paragraph naming the
    holder and exit 2 when another live run holds it. A folder that cannot be made or written
    is left to ``check_run_dir``, which says why. Only rank 0 under torchrun takes it."""
    if not is_main_process():
        return
    from .config.run_lock import hold

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
        return run_dir_of(path)
    return None


def check_run_dir_is_free(config, run_dir: Path, key: str, prog: str = "vaegan-train") -> None:
    """Print one paragraph and exit 2 when ``run_dir`` holds checkpoints of a run that this one
    (``config``, the whole composed config) does not continue, before Hydra overwrites that
    run's record there (``.hydra/``, the log). A config that does not resolve is left to the
    run's own validation, which names what is wrong with it."""
    if not is_main_process() or not (Path(run_dir) / CHECKPOINT_DIR).is_dir():
        return
    from omegaconf import OmegaConf

    from .training.resume import continues_run_in, refuse_foreign_checkpoints

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
