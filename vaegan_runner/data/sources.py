"""The two ImageSource kinds: tensors held on the device, and a folder read by a DataLoader;
and ``DATASETS``, where each dataset module registers its loader and config dataclass.

Both yield (images uint8 [B, C, H, W], labels int64 [B]) on the device, in an order that is a
pure function of (seed, epoch), so a run resumed at batch ``start`` sees the same batches as
the uninterrupted run from there on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..registry import Registry

Batch = tuple[torch.Tensor, torch.Tensor]
BINARIZE_STREAM = 2  # (dataset seed, 2): the one-off binarisation of a test split


class ImageSource(Protocol):
    def __len__(self) -> int: ...

    def num_batches(self, batch_size: int, drop_last: bool = True) -> int: ...

    def batches(
        self,
        batch_size: int,
        *,
        epoch: int,
        seed: int,
        start: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[Batch]: ...

    def take(self, n: int) -> Batch: ...


@dataclass
class ImageData:
    name: str
    channels: int
    image_size: int
    num_classes: int | None  # None: unlabelled (labels are all 0)
    train: ImageSource
    test: ImageSource
    labelled: Any = None  # dataset.labelled: the LabelledSubset the model may see the labels of (labelled.py)
    source: str = ""  # which copy of the data: its origin and its digest (metrics.json, the HPARAMS row)
    digest: str = ""  # the digest alone (its pixels, or an image folder's file listing): in every metric stamp


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset a config may name: its loader (config, device) -> ImageData, and its config dataclass."""

    name: str
    load: Callable[..., ImageData]
    config: type


DATASETS: Registry[DatasetEntry] = Registry("dataset", "dataset", record=DatasetEntry)


def seeded_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator whose numbers are a pure function of (seed, stream), e.g. (seed, epoch)."""
    words = np.array([seed, stream], np.int64).view(np.uint32)
    return torch.Generator().manual_seed(int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0]))


def epoch_order(n: int, *, epoch: int, seed: int, shuffle: bool = True) -> torch.Tensor:
    """The order of the n indices in one epoch: a (seed, epoch) permutation, or 0..n-1."""
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=seeded_generator(seed, epoch))


def shard_of(indices: torch.Tensor, shard: tuple[int, int]) -> torch.Tensor:
    """Process ``rank``'s equal slice of one global batch's indices (``shard = (rank, world)``)."""
    rank, world = shard
    part = indices.shape[0] // world
    return indices[rank * part : (rank + 1) * part]


def count_batches(n: int, batch_size: int, drop_last: bool) -> int:
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    return n // batch_size if drop_last else -(-n // batch_size)


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli samples with p = pixel / 255, as uint8 0 or 255 (global RNG unless given one)."""
    p = images.float() / 255
    return (torch.bernoulli(p, generator=generator) * 255).to(torch.uint8)


class TensorSource:
    """Images in one uint8 tensor [N, C, H, W] with int64 labels [N], both on the device.

    With ``binarize`` every batch is a fresh Bernoulli sample (torch's global RNG); ``take``
    returns the stored images.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, binarize: bool = False):
        self.images, self.labels, self.binarize = images, labels, binarize

    def __len__(self) -> int:
        return self.images.shape[0]

    def num_batches(self, batch_size: int, drop_last: bool = True) -> int:
        return count_batches(len(self), batch_size, drop_last)

    def batches(
        self,
        batch_size: int,
        *,
        epoch: int,
        seed: int,
        start: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[Batch]:
        order = epoch_order(len(self), epoch=epoch, seed=seed, shuffle=shuffle).to(self.images.device)
        for b in range(start, self.num_batches(batch_size, drop_last)):
            idx = shard_of(order[b * batch_size : (b + 1) * batch_size], shard)
            images = self.images[idx]
            yield (binarize(images) if self.binarize else images), self.labels[idx]

    def take(self, n: int) -> Batch:
        return self.images[:n], self.labels[:n]


def pixel_digest(*splits: Batch) -> str:
    """sha256 of the images and labels of the splits, as stored (uint8, before binarisation)."""
    digest = hashlib.sha256()
    for images, labels in splits:
        digest.update(str(tuple(images.shape)).encode())
        digest.update(images.contiguous().cpu().numpy().data)
        digest.update(labels.to(torch.int64).contiguous().cpu().numpy().data)
    return f"sha256:{digest.hexdigest()[:12]}"


def in_memory_data(
    name: str,
    train: Batch,
    test: Batch,
    num_classes: int | None,
    device: torch.device,
    binarize_seed: int | None = None,
    origin: str | None = None,
) -> ImageData:
    """ImageData from CPU (images, labels) pairs, moved to the device once.

    ``binarize_seed`` switches on dynamic binarisation: the train source samples per batch, the
    test split is sampled once here from that seed so that evaluation is stable. ``origin`` says
    where the pixels came from; with a digest of them it becomes ``ImageData.source``.
    """
    (train_x, train_y), (test_x, test_y) = train, test
    dynamic = binarize_seed is not None
    if binarize_seed is not None:  # dynamic
        test_x = binarize(test_x, seeded_generator(binarize_seed, BINARIZE_STREAM))
    _, channels, image_size, _ = train_x.shape
    digest = pixel_digest(train, test)
    return ImageData(
        name=name,
        channels=channels,
        image_size=image_size,
        num_classes=num_classes,
        train=TensorSource(train_x.to(device), train_y.long().to(device), binarize=dynamic),
        test=TensorSource(test_x.to(device), test_y.long().to(device)),
        source=f"{origin or name}, pixels {digest}",
        digest=f"pixels {digest}",
    )


class _BatchList(Sampler[list[int]]):
    """A batch sampler that replays the list of index batches set before each pass."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class LoaderSource:
    """Images decoded by a map-style dataset (returning (uint8 CHW, label)) through a DataLoader.

    The workers persist across passes and are shared by every call of ``batches``, so run one
    pass of a source at a time (abandoning a pass is fine; the next one resets the workers).
    """

    def __init__(self, dataset: Dataset, device: torch.device, num_workers: int):
        self.dataset, self.device = dataset, device
        self.sampler = _BatchList()
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
        )

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))  # a map-style dataset: it has a length

    def num_batches(self, batch_size: int, drop_last: bool = True) -> int:
        return count_batches(len(self), batch_size, drop_last)

    def batches(
        self,
        batch_size: int,
        *,
        epoch: int,
        seed: int,
        start: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[Batch]:
        order = epoch_order(len(self), epoch=epoch, seed=seed, shuffle=shuffle)
        stop = self.num_batches(batch_size, drop_last) * batch_size
        self.sampler.batches = [shard_of(b, shard).tolist() for b in order[start * batch_size : stop].split(batch_size)]
        for images, labels in self.loader:
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def take(self, n: int) -> Batch:
        items = [self.dataset[i] for i in range(min(n, len(self)))]
        images = torch.stack([image for image, _ in items])
        labels = torch.tensor([label for _, label in items], dtype=torch.int64)
        return images.to(self.device), labels.to(self.device)
