"""One builder per cache entry: processes that need the same entry take turns, so it is built once.

The decoded datasets, the domain classifiers and the Inception features of a reference split are
each built by the first run that needs them and read back by every later one. Built at the same
time by two processes (the jobs of a parallel sweep on a fresh machine, two terminals), each
would build it at half the machine's speed, and one of the two results would be thrown away: on
CIFAR-10 on a CPU that is minutes for the classifier and most of an hour for the Inception
features. ``built_once(path)`` holds an operating-system file lock on ``<path>.lock`` (the
``filelock`` package: ``flock`` on POSIX, ``msvcrt`` on Windows) while its caller looks for the
entry and, when it is missing, builds and writes it. A second process waits at the lock, saying
for what, and then finds the entry written. The operating system drops the lock of a process that
dies, so a lock file left behind never blocks anyone; the holder removes it when done.

Where no lock can be taken (a cache folder that cannot be written, a file system without locks)
the caller goes on unlocked: turn-taking is a saving, never a condition for a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


@contextmanager
def built_once(path: Path, what: str, say: Callable[[str], None] = log.info) -> Iterator[None]:
    """Hold the lock of the cache entry ``path`` (``what`` names it in the waiting message)."""
    lock = _lock_for(Path(path))
    try:
        if lock is not None and not _acquire(lock, path, what, say):
            lock = None
        yield
    finally:
        if lock is not None and lock.is_locked:
            lock.release()
            # a waiting process polls by path, so it takes the lock on a new file just as well;
            # removing this one keeps the cache folder to its entries
            Path(lock.lock_file).unlink(missing_ok=True)


def _lock_for(path: Path) -> FileLock | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    # no soft-lock fallback: a soft lock outlives a crashed holder, and unlocked is the fallback here
    return FileLock(f"{path}.lock", fallback_to_soft=False)


def _acquire(lock: FileLock, path: Path, what: str, say: Callable[[str], None]) -> bool:
    """Take the lock, waiting (after saying so) while another process holds it. False when the
    file system cannot lock."""
    try:
        try:
            lock.acquire(blocking=False)
        except Timeout:
            say(f"waiting for another process that is building {what} ({path}); it is read from there when done")
            lock.acquire()
    except OSError as err:
        log.debug("no lock for %s (%s): building it without turn-taking", path, err)
        return False
    return True
