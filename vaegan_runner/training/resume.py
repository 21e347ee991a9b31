"""Which checkpoint a run continues from: ``resume=auto``, a run directory, or a file.

``resume=auto`` looks where an earlier life of the same run would be: the run directory
itself (a fixed ``hydra.run.dir``), the other run directories next to it
(``outputs/<model>-<dataset>/*``) and, for a multirun job, the job of the same name in earlier
sweeps (``outputs/multirun/*/<job>``). A directory qualifies when its newest readable
checkpoint was trained with the same settings: the same seed, model, dataset, optimizer and
trainer keys, except the ones that only say how long to train or how fast
(``TRAINING_LENGTH_AND_SPEED``), so a finished run can also be extended. The run directory's
own run wins when it qualifies, else the most recently written one; with none, the run starts
fresh.

A corrupt or truncated newest checkpoint in a directory is skipped with a warning and the
one before it is used; a checkpoint named as a file must be readable.

A run never writes into a folder that holds another run's checkpoints unless it continues that
run (``continues_run_in``, ``refuse_foreign_checkpoints``): the two runs' ``step_*.pt`` files
would interleave, and ``checkpoint.keep_last`` would delete the older run's. For a single run
``run_dir_check.RunDirCheck`` refuses before Hydra writes its record (``.hydra/``, the log)
into the folder; ``train.run`` refuses a multirun job, whose folder Hydra makes as it starts. A folder that a live
run still writes into (its lock, ``config/run_lock.py``) is refused before any of this, also
when ``resume`` names or finds it.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from ..config.checks import ConfigError
from ..config.run_dir import CHECKPOINT_DIR
from .checkpoint import Checkpoint, best_path, find_checkpoint, list_checkpoints, read_checkpoint
from .resume_check import setting_changes

log = logging.getLogger("vaegan_runner")
IDENTITY_GROUPS = ("seed", "model", "dataset", "optimizer", "trainer")
TRAINING_LENGTH_AND_SPEED = {
    ("trainer", "max_steps"),
    ("trainer", "max_epochs"),
    ("trainer", "compile"),
    ("trainer", "channels_last"),
    ("dataset", "root"),
    ("dataset", "cache_dir"),
    ("dataset", "download"),
}


def run_identity(resolved: dict) -> dict:
    """The settings that make two runs the same training run."""
    identity = {key: copy.deepcopy(resolved.get(key)) for key in IDENTITY_GROUPS}
    for group, key in TRAINING_LENGTH_AND_SPEED:
        settings = identity.get(group)
        if isinstance(settings, dict):
            settings.pop(key, None)
    return identity


def changed_settings(saved_config: dict, resolved: dict) -> list[str]:
    """'key is A in the checkpoint and B here' for every setting of the run's identity (see
    ``run_identity``) that a resume from a checkpoint with ``saved_config`` changes."""
    theirs, ours = run_identity(saved_config), run_identity(resolved)
    return [
        change for group in IDENTITY_GROUPS for change in setting_changes(theirs.get(group), ours.get(group), group)
    ]


def newest_readable(run_dir: Path) -> tuple[Path, Checkpoint] | None:
    """The newest checkpoint of ``run_dir`` that loads, warning about any newer broken ones."""
    for path in reversed(list_checkpoints(run_dir / CHECKPOINT_DIR)):
        try:
            return path, read_checkpoint(path)
        except ConfigError as err:
            log.warning("skipping a broken checkpoint: %s", str(err).split(": ", 1)[-1])
    return None


def candidate_dirs(output_dir: Path, multirun: bool) -> list[Path]:
    siblings = [p for p in output_dir.parent.iterdir() if p.is_dir()] if output_dir.parent.is_dir() else []
    if not multirun:
        return siblings + [output_dir]
    sweeps = output_dir.parent.parent
    return [p / output_dir.name for p in sweeps.iterdir() if (p / output_dir.name).is_dir()] if sweeps.is_dir() else []


def find_auto(output_dir: Path, resolved: dict, multirun: bool) -> tuple[Path, Checkpoint] | None:
    """The newest checkpoint of an earlier life of this run, or None: the run in ``output_dir``
    itself when it has these settings (a fixed ``hydra.run.dir``), else the most recently
    written one among the candidates."""
    wanted = run_identity(resolved)
    own = newest_readable(output_dir) if output_dir.is_dir() else None
    if own is not None and run_identity(own[1].config) == wanted:
        return own
    best: tuple[float, Path, Checkpoint] | None = None
    for run_dir in set(candidate_dirs(output_dir, multirun)):
        found = newest_readable(run_dir)
        if found is None or run_identity(found[1].config) != wanted:
            continue
        written = found[0].stat().st_mtime
        if best is None or written > best[0]:
            best = (written, *found)
    return None if best is None else best[1:]


def resolve_resume(target: str, output_dir: Path, resolved: dict, multirun: bool) -> tuple[Path, Checkpoint] | None:
    """(checkpoint file, its contents) to continue from, or None to start fresh."""
    if target == "auto":
        found = find_auto(output_dir, resolved, multirun)
        if found is None:
            log.info("resume=auto: no earlier run with these settings; starting fresh")
        return found
    path = Path(target).expanduser()
    if path.is_dir():
        found = newest_readable(path)
        if found is None:
            find_checkpoint(path)  # raises: no checkpoint at all
            raise ConfigError("resume", f"no readable checkpoint in {path}: every one is truncated or corrupt")
        return found
    checkpoint = find_checkpoint(path)
    return checkpoint, read_checkpoint(checkpoint)


def continues_run_in(run_dir: Path, resolved: dict) -> bool:
    """Whether a run with the config ``resolved`` writes on in the run that ``run_dir`` holds:
    ``resume`` names that folder or a file in it, or is ``auto`` and the folder's newest readable
    checkpoint was trained with this run's settings (``run_identity``)."""
    target = resolved.get("resume")
    if target is None:
        return False
    if target == "auto":
        found = newest_readable(run_dir)
        return found is not None and run_identity(found[1].config) == run_identity(resolved)
    path, here = Path(str(target)).expanduser().absolute(), run_dir.expanduser().absolute()
    return path == here or here in path.parents


def refuse_foreign_checkpoints(run_dir: Path, resolved: dict, key: str) -> None:
    """Raise a ConfigError naming ``key`` (the setting that chose ``run_dir``) when ``run_dir``
    holds checkpoints: called for a run that does not continue the run they belong to."""
    found = list_checkpoints(run_dir / CHECKPOINT_DIR)
    if best_path(run_dir).is_file():
        found.append(best_path(run_dir))
    if not found:
        return
    newest = newest_readable(run_dir)
    changes = changed_settings(newest[1].config, resolved) if newest else []
    if newest is None:
        whose = "none of them readable"
    elif changes:
        whose = f"trained with other settings: {'; '.join(changes)}"
    else:
        whose = f"trained with these settings (newest {newest[0].name}); resume=auto would continue it"
    # resuming takes the run's own settings: the overrides that differ from them must go
    keep_theirs = " without the settings that differ (a resumed run keeps its own)" if changes else ""
    raise ConfigError(
        key,
        f"{run_dir} already holds another run's checkpoints ({len(found)} in {CHECKPOINT_DIR}/, {whose}), "
        f"and this run does not continue it: a fresh run's checkpoints would mix with them and "
        f"checkpoint.keep_last would delete theirs. Continue that run with resume={run_dir}{keep_theirs}, "
        f"or give this one its own folder ({key}=<another path>)",
    )
