"""One evaluation's shared work: its samples and their features, and its passes over held-out images.

A ``MetricContext`` is what a metric of ``registry.py`` is a function of: it generates the
evaluation's ``n_samples`` images once (seeded, so every evaluation draws the same latents) and
shares their features between the metrics that read them; it reads the first ``max_images``
held-out images for the likelihood bounds, reconstructions and probes. What all evaluations of a
run share lives in ``MetricResources`` (``resources.py``); ``evaluate.py`` runs the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, cast

import torch

from ..data.pixels import to_pixels, to_unit
from ..models import Family
from ..models.fitted_prior import ExPostPrior
from .fingerprints import SAMPLE_SEED, unit_batches
from .frechet import FeatureAccumulator, FeatureStats
from .probe import linear_probe_accuracy
from .progress import Progress
from .resources import MetricResources
from .results import MetricResults

if TYPE_CHECKING:
    from .cost import PassTimer

IWAE_AUTO = "auto"  # eval.iwae_max_images: the whole split unless it would take longer than the training
IWAE_MIN_IMAGES = 1000  # auto's fewest images, and the step it rounds down to (repeatable counts)
LIKELIHOOD_PROBE_DRAWS = 4  # the likelihood bound's timed batch draws at most this many z per image


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
        self.metric_names: list[str] = []  # the metrics this evaluation runs (auto leaves the others room)

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
        count (at most this evaluation's), null: all of them, auto: all unless the evaluation
        would then take longer than the training did (``training_seconds``; unknown: all), else as
        many as fit in the training's time less the other metrics' estimated cost
        (``other_metrics_seconds``), rounded down to a multiple of ``IWAE_MIN_IMAGES`` and at least that
        many; auto's choice is logged."""
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
        others = self.other_metrics_seconds()
        budget = self.training_seconds - others
        if held_out * per_image <= budget:
            return held_out
        fits = int(max(0.0, budget) / per_image) // IWAE_MIN_IMAGES * IWAE_MIN_IMAGES
        images = min(held_out, max(IWAE_MIN_IMAGES, fits))
        if images < held_out:
            training, others_text = format_seconds(self.training_seconds), format_seconds(others)
            if others <= 0:
                room = f"longer than the training's {training}"
            elif budget <= 0:
                room = f"and the other metrics (~{others_text}) alone take longer than the training's {training}"
            else:
                left = format_seconds(budget)
                room = f"longer than the ~{left} the other metrics (~{others_text}) leave of the training's {training}"
            self.progress.say(
                f"eval.iwae_max_images=auto: the IWAE bound (k={self.cfg.iwae_k}) on {images} of the {held_out} "
                f"held-out images, ~{format_seconds(images * per_image)}: all of them would take "
                f"~{format_seconds(held_out * per_image)}, {room}; eval.iwae_max_images=null uses them all"
            )
        return images

    def other_metrics_seconds(self) -> float:
        """The estimated cost (``cost.py``) of this evaluation's metrics (``metric_names``) other
        than the IWAE bound, so that auto leaves them their share of the training's time; 0 when
        they cannot be estimated."""
        from .cost import estimate_metrics

        try:
            estimates = estimate_metrics([name for name in self.metric_names if name != "iwae"], self)
        except Exception:  # an estimate never keeps the bound from running: the training time alone then
            return 0.0
        return sum(e.seconds for e in estimates.values() if e is not None)

    @cached_property
    def pass_timer(self) -> PassTimer:
        """Each kind of pass timed once per evaluation, whoever asks (``cost.py``)."""
        from .cost import PassTimer

        return PassTimer(self)

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
