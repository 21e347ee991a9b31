"""Writing a file atomically: a reader sees the old file or the new one, never half of one.

The new content goes to a temporary file in the same folder (the same filesystem, so that
``os.replace`` is a rename), which replaces the file once it is whole. Any exception on the way
(a full disk, a ``KeyboardInterrupt``) removes the temporary file, leaves the old file as it was
and propagates. Every temporary file is named ``.<stem>.<pid>-<token><suffix>.tmp``: hidden,
unique to one process and one write (two writers never share one), ending in
``<suffix>.tmp`` so that ``stale_temporaries`` finds those a killed process left.

This module imports nothing else of the package, so that any part of it (``config/`` too) can
use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temporary_path(path: Path) -> Path:
    """A name in ``path``'s folder that no other write uses: ``.<stem>.<pid>-<token><suffix>.tmp``."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}{path.suffix}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the caller to write; when the block ends
    normally it replaces ``path``, when it raises it is removed and the exception propagates."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", fsync: bool = False, **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` written atomically (``atomic_path``): ``mode`` is ``"wb"`` or ``"w"``
    (``kwargs`` go to ``open``, e.g. ``encoding``); the temporary file is created exclusively,
    with the umask's permissions. With ``fsync`` its content reaches the disk before the rename,
    so that a crash of the machine cannot leave a torn file under the name either."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes a new file (mode 'wb' or 'w'), not mode {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode.replace("w", "x"), **kwargs) as f:
        yield f
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """``Path.write_text``, atomically."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def stale_temporaries(folder: Path, suffix: str) -> Iterator[Path]:
    """Temporary files of files named ``*<suffix>`` in ``folder`` (e.g. ``".pt"``) that a process
    killed mid-write left behind (and ``<name><suffix>.tmp``, the name older versions used)."""
    return folder.glob(f"*{suffix}.tmp")
