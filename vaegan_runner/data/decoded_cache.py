"""An on-disk cache of decoded in-memory datasets, so that a second run starts without decoding.

MNIST's gunzip + IDX parse, CIFAR-10's pickle batches, rendering shapes and any resize to
``image_size`` take a few tenths of a second per run on two CPU cores (seconds when other
work keeps the cores busy); reading the finished uint8 tensors back takes 3 to 20 ms.
``cached_splits`` wraps a loader's decode step:

    <cache_dir>/<dataset>-<size>px-<channels>ch-<digest>.npz

one uncompressed ``.npz`` (plain ``.npy`` members, read with ``allow_pickle=False``) per
entry, holding ``train_images``, ``train_labels``, ``test_images``, ``test_labels`` and
``key``. The digest is a SHA-256 of the key: the format version, the torch version (resizing
and rendering are torch arithmetic), the dataset name, image size, channels, and what the
loader says identifies its source (``file_identity`` of the files read, or the generation
parameters of shapes). The key is also stored inside the entry and compared on load.

An entry is written to a temporary file in the same folder and renamed into place, so a
reader sees a whole entry or none. An entry that cannot be read back whole (truncated, bit
flips: ``zipfile`` checks every member's CRC-32 as it is read to its end), that holds another
key or arrays of the wrong shape, is decoded again and rewritten, with a warning. A cache
folder that cannot be written only costs the speed-up (one warning); ``cache_dir=None``
switches the cache off. Processes that need one entry at the same time take turns
(``build_once``): the first decodes and writes it, the others read it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ..atomic_write import atomic_open
from ..build_once import built_once

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the entry layout or the meaning of decoded pixels changes
Split = tuple[torch.Tensor, torch.Tensor]  # uint8 images [N, C, S, S], int64 labels [N]
SPLITS = ("train", "test")


def file_identity(paths: Iterable[Path]) -> list[list]:
    """(absolute path, size, mtime in ns) of each file: a changed or replaced file is a new key
    (short of a same-size rewrite within the file system's timestamp resolution)."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return out


def cached_splits(
    cache_dir: str | None, name: str, image_size: int, channels: int, source, decode: Callable[[], tuple[Split, Split]]
) -> tuple[Split, Split]:
    """The (train, test) splits from the cache entry for this key, or from ``decode()``,
    whose result is then cached. ``source`` is any JSON-able identity of the loader's input."""
    if cache_dir is None:
        return decode()
    key = {
        "format": FORMAT_VERSION,
        "torch": torch.__version__,
        "dataset": name,
        "image_size": image_size,
        "channels": channels,
        "source": source,
    }
    path = entry_path(Path(cache_dir).expanduser(), key)
    with built_once(path, f"the decoded images of {name}"):
        if path.is_file():
            try:
                splits = read_entry(path, key)
                log.info("%s: decoded images read from the cache %s", name, path)
                return splits
            except Exception as err:  # torn, corrupt or foreign file: zipfile, numpy and the checks raise many kinds
                log.warning(
                    "%s: the cache entry %s is unusable (%s: %s); decoding again and rewriting it",
                    name,
                    path,
                    type(err).__name__,
                    err,
                )
        splits = decode()
        write_entry(path, key, splits)
        return splits


def entry_path(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha256(key_bytes(key)).hexdigest()[:16]
    return cache_dir / f"{key['dataset']}-{key['image_size']}px-{key['channels']}ch-{digest}.npz"


def key_bytes(key: dict) -> bytes:
    return json.dumps(key, sort_keys=True).encode()


def read_entry(path: Path, key: dict) -> tuple[Split, Split]:
    """Load and check one entry; raises ValueError (or zipfile's and numpy's errors) if it is
    not a whole entry for ``key``."""
    with np.load(path, allow_pickle=False) as entry:
        if entry["key"].tobytes() != key_bytes(key):
            raise ValueError("it was written for another key")
        arrays = {f"{split}_{kind}": entry[f"{split}_{kind}"] for split in SPLITS for kind in ("images", "labels")}
    shape = (key["channels"], key["image_size"], key["image_size"])
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != shape:
            raise ValueError(f"{split} images are {images.dtype} {images.shape}, expected uint8 [N, {shape}]")
        if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
            raise ValueError(f"{split} labels are {labels.dtype} {labels.shape}, expected int64 [{images.shape[0]}]")
    return cast(
        tuple[Split, Split],  # SPLITS: train, test
        tuple(
            (torch.from_numpy(arrays[f"{split}_images"]), torch.from_numpy(arrays[f"{split}_labels"]))
            for split in SPLITS
        ),
    )


def write_entry(path: Path, key: dict, splits: tuple[Split, Split]) -> None:
    """Write atomically (temporary file + rename); on any OS error warn and go on uncached."""
    arrays = {"key": np.frombuffer(key_bytes(key), np.uint8)}
    for split, (images, labels) in zip(SPLITS, splits):
        arrays[f"{split}_images"] = images.cpu().to(torch.uint8).numpy()
        arrays[f"{split}_labels"] = labels.cpu().to(torch.int64).numpy()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as f:  # a file written in part (a full disk, say) is removed
            np.savez(f, **arrays)  # type: ignore[arg-type]  # no key is savez's allow_pickle
        log.info("%s: decoded images cached in %s", key["dataset"], path)
    except OSError as err:
        log.warning(
            "%s: cannot write the decoded-dataset cache %s (%s); going on without it "
            "(set dataset.cache_dir, or VAEGAN_CACHE_DIR that it defaults to, to a writable folder, "
            "or dataset.cache_dir=null to stop trying)",
            key["dataset"],
            path,
            err,
        )
