"""A small CNN trained on a dataset's own labels: the feature extractor of the "domain" metrics.

Inception features are slow on a CPU and were learnt on photographs, not on 28x28 digits. For
labelled data a classifier trained on the training split itself gives a fast, in-domain
alternative: its penultimate activations feed a Fréchet distance (domain FID), precision/recall
and diversity, its logits an Inception-Score-like classifier score and class coverage.

The network is a stack of stages (3x3 conv, batch norm, ReLU, then a 2x2 max pool while the map
is wider than the recipe's ``pool_above``), two at least and more until the map is that narrow;
then the flattened map -> ``FEATURE_DIM`` (ReLU: the features) -> class logits. The stages follow
from the image shape, so any size and channel count works (28 -> 14 -> 7; 64 -> 32 -> 16 -> 8;
8 stays 8). Inputs are floats in [0, 1], mapped to [-1, 1] inside; channels-last memory makes the
convolutions about twice as fast on a CPU.

Two recipes (``recipe_for``): grey images get stages of 16, 32, 64 channels down to an 8-pixel
map, 3 epochs (at least ``MIN_STEPS`` steps, so small datasets such as ``shapes`` converge), no
augmentation. Colour images (photographs such as CIFAR-10) are harder to tell apart: stages of
32, 64, 128 channels down to a 4-pixel map, random 4-pixel shifts (reflected borders) and
horizontal flips of the training batches, and more epochs. Both use Adam with a one-cycle
learning rate peaking at ``LR``, batch ``BATCH_SIZE``. The held-out accuracy of each trained
classifier is logged and stored with it; the accuracies measured are in docs/results.md.
Training runs on a forked RNG seeded with ``seed`` (weights, augmentation, binarisation samples)
and the source's own (seed, epoch) shuffle, so the result is a function of the seed and the
data, and the caller's RNG state is left exactly as it was.

The trained network is cached at
``<cache_dir>/domain_classifier/<name>-<C>x<H>x<W>-<fingerprint>.pt``; the fingerprint covers
``ARCH_VERSION``, the recipe, the seed, and a cheap digest of both splits' content (a strided
subset of the pixels, every image's pixel sum, all labels), so different data never reuses a
stale classifier. The file holds only tensors, ints, floats and strings and is read with
``weights_only=True``; an unreadable or mismatched file is logged and replaced.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..atomic_write import atomic_path
from ..build_once import built_once
from ..data import ImageData

ARCH_VERSION = 1  # bump whenever a change to the network or the training makes old caches wrong
FEATURE_DIM = 128  # width of the penultimate layer: the features
MIN_STAGES = 2  # conv stages even for images of 8 pixels or less
MIN_STEPS = 300  # at least this many optimiser steps, however small the dataset
BATCH_SIZE = 128
LR = 5e-3  # one-cycle peak learning rate of Adam
WARMUP = 0.25  # share of the steps spent raising the learning rate
EVAL_BATCH = 1000
FINGERPRINT_IMAGES = 1024  # images hashed pixel for pixel (a strided subset of the split)


@dataclass(frozen=True)
class Recipe:
    first_width: int  # channels of the first stage, doubling per stage up to max_width
    max_width: int
    pool_above: int  # a stage max-pools while its input is wider than this
    epochs: int
    shift: int  # augmentation: random shifts of up to this many pixels (reflected borders); 0 = none
    flip: bool  # augmentation: random horizontal flips

    def fingerprint_fields(self) -> dict:
        """What the cache fingerprint covers. The grey recipe's fields keep the names and values
        they had before colour images got their own, so existing caches stay valid."""
        fields = dict(pool_above=self.pool_above, epochs=self.epochs)
        if self != GREY:
            fields.update(first_width=self.first_width, max_width=self.max_width, shift=self.shift, flip=self.flip)
        return fields


GREY = Recipe(first_width=16, max_width=64, pool_above=8, epochs=3, shift=0, flip=False)
COLOUR = Recipe(first_width=32, max_width=128, pool_above=4, epochs=12, shift=4, flip=True)


def recipe_for(channels: int) -> Recipe:
    return COLOUR if channels == 3 else GREY


def _stage_widths(height: int, width: int, recipe: Recipe = GREY) -> list[tuple[int, bool]]:
    """(channels, pools) of each conv stage for an input of that size."""
    stages: list[tuple[int, bool]] = []
    while len(stages) < MIN_STAGES or max(height, width) > recipe.pool_above:
        pools = max(height, width) > recipe.pool_above
        stages.append((min(recipe.first_width * 2 ** len(stages), recipe.max_width), pools))
        if pools:
            height, width = height // 2, width // 2
    return stages


class DomainClassifier(nn.Module):
    """The classifier; ``features`` / ``logits`` take float images in [0, 1] and run in eval mode."""

    num_classes: int
    feature_dim: int
    test_accuracy: float  # on the whole held-out split, measured when it was trained

    def __init__(self, channels: int, height: int, width: int, num_classes: int):
        super().__init__()
        self.num_classes, self.feature_dim = num_classes, FEATURE_DIM
        self.test_accuracy = float("nan")
        layers: list[nn.Module] = []
        in_channels = channels
        for out_channels, pools in _stage_widths(height, width, recipe_for(channels)):
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            if pools:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_channels = out_channels
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(in_channels * height * width, FEATURE_DIM), nn.ReLU(inplace=True))
        self.head = nn.Linear(FEATURE_DIM, num_classes)
        self.to(memory_format=torch.channels_last)

    def forward(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        """(features, logits) in the current mode, with gradients: for training."""
        x = (images01 * 2 - 1).contiguous(memory_format=torch.channels_last)
        features = self.hidden(self.body(x))
        return features, self.head(features)

    @torch.no_grad()
    def features_and_logits(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        """[B, C, H, W] floats in [0, 1] -> features [B, feature_dim] and logits [B, num_classes]."""
        self.eval()
        return self(images01.to(self.head.weight.device, torch.float32))

    def features(self, images01: Tensor) -> Tensor:
        return self.features_and_logits(images01)[0]

    def logits(self, images01: Tensor) -> Tensor:
        return self.features_and_logits(images01)[1]


def _split_digest(source) -> bytes:
    """A cheap digest of a split's content (tens of ms for MNIST): the shape, whether batches are
    binarised, a strided subset of the images pixel for pixel, every image's pixel sum, all labels.
    In-memory sources expose their tensors; others are sampled through ``take``."""
    images, labels = (source.images, source.labels) if hasattr(source, "images") else source.take(FINGERPRINT_IMAGES)
    step = max(1, images.shape[0] // FINGERPRINT_IMAGES)
    digest = hashlib.sha256(repr((len(source), tuple(images.shape), getattr(source, "binarize", False))).encode())
    digest.update(images[::step].contiguous().cpu().numpy().tobytes())
    digest.update(images.sum(dim=(1, 2, 3), dtype=torch.int64).cpu().numpy().tobytes())
    digest.update(labels.cpu().numpy().tobytes())
    return digest.digest()


def fingerprint(data: ImageData, seed: int) -> str:
    """A short hex digest of everything the trained classifier depends on."""
    recipe = dict(
        arch=ARCH_VERSION,
        feature_dim=FEATURE_DIM,
        **recipe_for(data.channels).fingerprint_fields(),
        min_stages=MIN_STAGES,
        min_steps=MIN_STEPS,
        batch_size=BATCH_SIZE,
        lr=LR,
        warmup=WARMUP,
        seed=seed,
        num_classes=data.num_classes,
    )
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    digest.update(_split_digest(data.train) + _split_digest(data.test))
    return digest.hexdigest()[:16]


def _accuracy(model: DomainClassifier, source) -> float:
    correct = 0
    for images, labels in source.batches(EVAL_BATCH, epoch=0, seed=0, shuffle=False, drop_last=False):
        correct += int((model.logits(images.float() / 255).argmax(1) == labels).sum())
    return correct / len(source)


def augment(images01: Tensor, recipe: Recipe) -> Tensor:
    """Random shifts (reflected borders) and horizontal flips, per image, from torch's RNG."""
    n, channels, height, width = images01.shape
    device = images01.device
    if recipe.shift > 0:
        s = recipe.shift
        padded = F.pad(images01, (s, s, s, s), mode="reflect")
        dy, dx = torch.randint(0, 2 * s + 1, (2, n), device=device)
        rows = (dy[:, None] + torch.arange(height, device=device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(width, device=device))[:, None, None, :]
        image = torch.arange(n, device=device)[:, None, None, None]
        images01 = padded[image, torch.arange(channels, device=device)[None, :, None, None], rows, cols]
    if recipe.flip:
        flipped = torch.rand(n, device=device) < 0.5
        images01 = torch.where(flipped[:, None, None, None], images01.flip(3), images01)
    return images01


def train_classifier(data: ImageData, device: torch.device, seed: int) -> DomainClassifier:
    """Train on the training split with the recipe for its images; measure the whole held-out split."""
    assert data.num_classes is not None  # labelled data only (domain_classifier refuses other data)
    devices = [device] if device.type == "cuda" else []
    recipe = recipe_for(data.channels)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = DomainClassifier(data.channels, data.image_size, data.image_size, data.num_classes).to(device)
        batch_size = min(BATCH_SIZE, len(data.train))
        per_epoch = data.train.num_batches(batch_size)
        epochs = max(recipe.epochs, math.ceil(MIN_STEPS / per_epoch))
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LR, total_steps=epochs * per_epoch, pct_start=WARMUP)
        model.train()
        for epoch in range(epochs):
            for images, labels in data.train.batches(batch_size, epoch=epoch, seed=seed):
                loss = F.cross_entropy(model(augment(images.float() / 255, recipe))[1], labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        model.eval()
        model.test_accuracy = _accuracy(model, data.test)
    return model


def _load(path: Path, data: ImageData, device: torch.device) -> tuple[DomainClassifier, float]:
    saved = torch.load(path, map_location=device, weights_only=True)
    if saved.get("arch") != ARCH_VERSION:
        raise ValueError(f"architecture version {saved.get('arch')}, expected {ARCH_VERSION}")
    assert data.num_classes is not None  # labelled data only (domain_classifier refuses other data)
    model = DomainClassifier(data.channels, data.image_size, data.image_size, data.num_classes).to(device)
    model.load_state_dict(saved["state_dict"])
    model.test_accuracy = float(saved["test_accuracy"])
    return model.eval(), float(saved["train_seconds"])


def _save(path: Path, model: DomainClassifier, train_seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(
            {
                "arch": ARCH_VERSION,
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "test_accuracy": model.test_accuracy,
                "train_seconds": train_seconds,
            },
            tmp,
        )


def cache_path(data: ImageData, cache_dir: Path, seed: int = 0) -> Path:
    """Where the classifier of ``data`` trained with ``seed`` is cached."""
    shape = f"{data.channels}x{data.image_size}x{data.image_size}"
    return Path(cache_dir) / "domain_classifier" / f"{data.name}-{shape}-{fingerprint(data, seed)}.pt"


def domain_classifier(
    data: ImageData, cache_dir: Path, device: torch.device, *, seed: int = 0, log: Callable[[str], None] = print
) -> DomainClassifier:
    """The classifier of ``data``: read from the cache, or trained (and cached) when absent."""
    if data.num_classes is None:
        raise ValueError(
            f"the domain classifier needs class labels, and dataset {data.name!r} has none "
            "(an image folder without class sub-folders)"
        )
    what = f"domain classifier of {data.name} ({data.channels}x{data.image_size}x{data.image_size}, seed {seed})"
    path = cache_path(data, cache_dir, seed)
    with built_once(path, f"the {what}", log):
        if path.is_file():
            try:
                model, train_seconds = _load(path, data, device)
                log(
                    f"{what}: loaded {path} "
                    f"(held-out accuracy {model.test_accuracy:.2%}, trained in {train_seconds:.0f} s)"
                )
                return model
            except Exception as err:  # torn, foreign or outdated file: train again and overwrite it
                log(f"{what}: ignoring unreadable cache file {path} ({type(err).__name__}: {err}); retraining")
        started = time.perf_counter()
        model = train_classifier(data, device, seed)
        train_seconds = time.perf_counter() - started
        try:
            _save(path, model, train_seconds)
            where = f"cached in {path}"
        except OSError as err:
            where = f"not cached ({err})"
    log(f"{what}: trained in {train_seconds:.0f} s, held-out accuracy {model.test_accuracy:.2%}; {where}")
    return model
