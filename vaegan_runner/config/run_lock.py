"""One run per folder: an OS file lock on ``<folder>/.vaegan-train.lock`` while a run writes there.

Two ``vaegan-train`` processes in one run directory would interleave their checkpoints, Hydra's
record (``.hydra/``), TensorBoard event files and ``train.log``, and both exit 0. So a run holds
its folder with ``fcntl.flock`` on a lock file in it, taken before anything is written there and
kept until the run ends. The operating system drops a flock when the process that took it dies,
however it dies (a crash, SIGKILL, a lost terminal), so a lock file left behind never blocks a
later run: only a live holder does. The file records the holder (PID, host, start time, command)
so that a refused run can name it; it is removed when its run ends normally.

A run that finds the lock held stops with a ``ConfigError`` naming the folder and the holder.
On a filesystem without locks (some network mounts) the run goes on unlocked, with a warning.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from .checks import ConfigError
from .run_dir import make_dir

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not locked
    fcntl = None  # type: ignore[assignment]  # the module or None: callers check for None

LOCK_NAME = ".vaegan-train.lock"
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # the filesystem cannot lock

REFUSALS = {  # why a folder held by another process is refused, by what this process wanted to do there
    "run": (
        "{folder} is in use by another run ({holder}); two runs in one folder would mix their checkpoints, "
        "train.log, TensorBoard files and Hydra's record (.hydra/). Give this run its own folder "
        "({key}=<another path>), or wait until that run has ended (Ctrl-C or SIGTERM stops it with a "
        "checkpoint; resume=auto continues it later)"
    ),
    "sweep": (
        "{folder} is in use by another sweep ({holder}); its jobs and this sweep's would write into the same "
        "job folders. Give this sweep its own folder ({key}=<another path>), or wait until that one has ended"
    ),
    "resume": (
        "the run in {folder} is still running ({holder}); resuming it now would write a second run into its "
        "folder. Wait until it has ended, or stop it (Ctrl-C or SIGTERM saves a checkpoint), then resume it"
    ),
}

log = logging.getLogger("vaegan_runner")
_held: dict[Path, int] = {}  # folder -> open file descriptor of its lock file, for this process


def _key(folder: str | Path) -> Path:
    return Path(folder).expanduser().resolve()


def holds(folder: str | Path) -> bool:
    """Whether this process holds ``folder``."""
    return _key(folder) in _held


def hold(folder: str | Path, key: str, purpose: str = "run") -> bool:
    """Take ``folder`` for this process: make it if needed, lock its lock file and write who
    holds it. True when taken now, False when this process held it already (or cannot lock on
    this filesystem). Raises ``ConfigError(key, ...)`` naming the folder and the holder when another
    live process holds it, in the words of ``REFUSALS[purpose]``. An ``OSError`` from
    making the folder or opening the file is left to the caller (an unwritable folder)."""
    folder = _key(folder)
    if fcntl is None or folder in _held:
        return False
    path = folder / LOCK_NAME
    while True:
        make_dir(folder)  # remembered as made by this command, for the clean-up of a run that wrote nothing
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # does not change a file that is there
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe(_read(fd))
            os.close(fd)
            raise ConfigError(key, REFUSALS[purpose].format(folder=folder, holder=holder, key=key)) from None
        except OSError as err:
            os.close(fd)
            if err.errno not in NO_LOCKS:
                raise
            log.warning("cannot lock %s (%s): nothing stops a second run from writing there", folder, err.strerror)
            return False
        if _same_file(fd, path):  # not a file its last holder removed between our open and flock
            break
        os.close(fd)
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": _command()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    if not _held:
        atexit.register(release_all)
    _held[folder] = fd
    return True


def release(folder: str | Path) -> None:
    """Give ``folder`` back: remove its lock file (if it is still ours) and unlock it."""
    fd = _held.pop(_key(folder), None)
    if fd is None:
        return
    path = _key(folder) / LOCK_NAME
    try:
        if _same_file(fd, path):
            path.unlink()
    except OSError:
        pass  # the folder is gone (a run that left nothing removes it) or cannot be written
    os.close(fd)  # unlocks


def release_all() -> None:
    """Give back every folder this process holds (at the end of a run, and at exit)."""
    for folder in list(_held):
        release(folder)


def describe(record: dict | None) -> str:
    """'PID 1234 on host node7, started 2026-12-07 10:00:00: vaegan-train model=gan'."""
    if not record or "pid" not in record:
        return "a process that has not written its details yet"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
    command = f": {record['command']}" if record.get("command") else ""
    return f"PID {record['pid']} on host {record.get('host', '?')}, started {started}{command}"


def _read(fd: int) -> dict | None:
    try:
        record = json.loads(os.pread(fd, 64 * 1024, 0).decode() or "null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, ours = path.stat(), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)


def _command() -> str:
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "train.py", "-m", "-c"):
        program = "vaegan-train"
    text = " ".join([program, *sys.argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."
