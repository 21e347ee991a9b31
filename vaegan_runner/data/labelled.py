"""A labelled subset for semi-supervised training (``dataset.labelled=N``).

N training images, N / classes of each class, are drawn once with a fixed seed (the same
images on every machine and run); the model sees no other training label. The training loop
takes its batches from ``training_batches``: each is the usual batch with every label hidden
(``UNLABELLED``), followed by a batch of as many labelled images (at most N) drawn from the
subset, seeded by (run seed, epoch, batch), so a resumed run sees the same batches.
Without ``dataset.labelled`` the batches are the training split's own, labels and all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..config.checks import ConfigError
from .sources import Batch, ImageData, TensorSource, binarize, seeded_generator

UNLABELLED = -1
SUBSET_SEED = 0  # the labelled images are a pure function of the dataset and N
LABELLED_STREAM = 3  # seeded_generator stream of the labelled batches, mixed with (epoch, batch)


@dataclass(frozen=True)
class LabelledSubset:
    images: torch.Tensor  # uint8 [N, C, H, W], on the device
    labels: torch.Tensor  # int64 [N]


def draw_labelled(data: ImageData, count: int) -> LabelledSubset:
    """``count`` training images, the same number of each class, by a fixed-seed permutation;
    a ConfigError on ``dataset.labelled`` for a count the data cannot give."""
    key = "dataset.labelled"
    if data.num_classes is None:
        raise ConfigError(key, f"{data.name} has no class labels to keep {count} of; leave dataset.labelled=null")
    if not isinstance(data.train, TensorSource):
        raise ConfigError(key, f"a labelled subset is drawn from datasets held in memory, not from {data.name}")
    k = data.num_classes
    if count <= 0 or count % k:
        raise ConfigError(
            key, f"must be a positive multiple of the {k} classes of {data.name} (the same number of each), got {count}"
        )
    if count > len(data.train):
        raise ConfigError(key, f"{count} is more than the {len(data.train)} training images of {data.name}")
    labels = data.train.labels.cpu()
    order = torch.randperm(len(labels), generator=seeded_generator(SUBSET_SEED, 0))
    chosen = []
    for c in range(k):
        of_class = order[labels[order] == c]
        if len(of_class) < count // k:
            raise ConfigError(
                key, f"class {c} of {data.name} has {len(of_class)} training images, fewer than {count // k}"
            )
        chosen.append(of_class[: count // k])
    index = torch.cat(chosen).sort().values.to(data.train.images.device)
    return LabelledSubset(data.train.images[index], data.train.labels[index])


def training_batches(
    data: ImageData,
    batch_size: int,
    *,
    epoch: int,
    seed: int,
    start: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Batch]:
    """The training loop's batches: the training split's, or with a labelled subset, each batch
    with its labels hidden followed by labelled images from the subset."""
    batches = data.train.batches(batch_size, epoch=epoch, seed=seed, start=start, shard=shard)
    labelled = data.labelled
    if labelled is None:
        yield from batches
        return
    assert isinstance(data.train, TensorSource)  # draw_labelled refuses any other source
    for b, (images, _) in enumerate(batches, start=start):
        n = min(images.shape[0], labelled.labels.shape[0])
        stream = int(np.int64(LABELLED_STREAM) * 1_000_003 + epoch * 100_003 + b * 101 + shard[0])
        pick = torch.randperm(labelled.labels.shape[0], generator=seeded_generator(seed, stream))[:n]
        pick = pick.to(labelled.images.device)
        extra = labelled.images[pick]
        if data.train.binarize:
            extra = binarize(extra)
        hidden = torch.full((images.shape[0],), UNLABELLED, dtype=torch.long, device=images.device)
        yield torch.cat([images, extra]), torch.cat([hidden, labelled.labels[pick]])
