"""What names the images and networks a number was computed on, and the ordered passes that read them.

A held-out split is read in storage order (``unit_batches``); its digest (``split_fingerprint``)
keys the cached reference features, so another copy or resizing of a dataset is another file;
``module_digest`` and ``file_digest`` put a network's weights into every protocol stamp.
``seeded_pass`` runs a pass on torch's RNG seeded with ``SAMPLE_SEED``, the seed of every
evaluation, so a split that binarises its images afresh reads the same images each time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

SAMPLE_SEED = 0  # the latents of every evaluation's samples, and the RNG of the evaluation itself


def unit_batches(data_source, batch_size: int, limit: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Held-out (uint8 images, labels) in storage order, at most ``limit`` images in all."""
    seen = 0
    for images, labels in data_source.batches(batch_size, epoch=0, seed=0, shuffle=False, drop_last=False):
        if limit is not None:
            images, labels = images[: limit - seen], labels[: limit - seen]
        if images.shape[0] == 0:
            break
        yield images, labels
        seen += images.shape[0]
        if limit is not None and seen >= limit:
            break


def split_fingerprint(source, batch_size: int) -> str:
    """A digest of a split's pixels and labels: reference statistics are reused only for the
    very same images (the same copy of the same dataset, after its resizing)."""
    digest = hashlib.sha256()
    for images, labels in unit_batches(source, batch_size, None):
        digest.update(images.cpu().contiguous().numpy().tobytes())
        digest.update(labels.cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


T = TypeVar("T")


def seeded_pass(device: torch.device, compute: Callable[[], T]) -> T:
    """``compute()`` on torch's RNG seeded with ``SAMPLE_SEED`` and put back afterwards: a split
    that binarises each batch afresh (``dataset.binarize`` training images) yields the same
    images on every pass, so its fingerprint names the images its features were computed on."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(SAMPLE_SEED)
        return compute()


def module_digest(module: torch.nn.Module) -> str:
    """sha256 (first 12 hex digits) of a network's weights: its parameters and buffers by name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"sha256:{digest.hexdigest()[:12]}"


def file_digest(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()[:12]}"
