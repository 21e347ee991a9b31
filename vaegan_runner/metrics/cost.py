"""What an evaluation will cost, said before it runs (the end-of-run evaluation, ``vaegan-eval``).

A metric's cost is its passes over images (``passes_of``): held-out images through the
likelihood bound at its k, through the encoder and decoder or the model's own classifier;
generated samples through the domain classifier or Inception; training images through the
encoder. A pass that metrics share (the samples' domain features serve domain_fid,
precision_recall and the others) is counted once, for the first metric that makes it. Each kind
of pass is timed once on one batch of held-out images and scaled by its image count; what
cannot be timed without doing it is named beside the figure (training the domain classifier on
first use, the linear probe's fit, the distances of precision/recall).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..data.pixels import to_unit
from .registry import METRICS

if TYPE_CHECKING:
    from .context import MetricContext

SAMPLE_PASSES = ("generate",)  # what a generated sample goes through before its features
UNTIMED_WORK = {  # what a metric computes beyond its passes over images, which is not timed
    "linear_probe": "the probe's fit",
    "nearest_neighbour": "the nearest-neighbour search",
    "precision_recall": "the k-nearest-neighbour distances",
    "domain_kid": "the kernel estimate",
    "inception_kid": "the kernel estimate",
}


@dataclass(frozen=True)
class Pass:
    """``images`` images through each of ``kinds`` (``likelihood`` at ``k`` draws); passes with
    the same ``shared`` name are made once per evaluation."""

    shared: str
    images: int
    kinds: tuple[str, ...]
    k: int = 1


@dataclass(frozen=True)
class Estimate:
    seconds: float
    work: str  # what the figure is for: "10000 held-out images x k=100"
    untimed: str = ""  # what it leaves out

    def __str__(self) -> str:
        extra = f" + {self.untimed}" if self.untimed else ""
        return f"~{format_seconds(self.seconds)} ({self.work}){extra}"


def format_seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def passes_of(name: str, ctx: MetricContext) -> list[Pass] | None:
    """The passes over images metric ``name`` makes; None for one this module does not know."""
    images = ctx.held_out_count()
    needs = METRICS[name].needs
    domain_reference = Pass("domain reference", len(ctx.data.test), ("domain",))
    if name == "neg_elbo":
        return [Pass("neg_elbo", images, ("likelihood",))]
    if name == "iwae":
        return [Pass("iwae", ctx.iwae_images(), ("likelihood",), k=ctx.cfg.iwae_k)]
    if name == "recon_mse":
        return [Pass("reconstructions", images, ("reconstruct",))]
    if name == "recon_fid":
        return [Pass("reconstruction features", images, ("reconstruct", "domain")), domain_reference]
    if name in ("linear_probe", "nearest_neighbour"):
        return [Pass("codes", ctx.training_codes_count() + images, ("encode",))]
    if name == "classifier_error":
        return [Pass("classified", images, ("classify",))]
    if "inception" in needs:
        samples = [Pass("inception samples", ctx.n_samples, (*SAMPLE_PASSES, "inception"))]
        resources = ctx.resources
        if not resources.inception_features_path().is_file():  # computed once per split, then cached
            samples.append(Pass("inception reference", len(resources.inception_reference_source), ("inception",)))
        return samples
    if "labels" in needs and "encoder" not in needs:
        return [Pass("domain samples", ctx.n_samples, (*SAMPLE_PASSES, "domain")), domain_reference]
    return None


TRAINS_CLASSIFIER = "training the domain classifier first (once per dataset, then cached)"


def untimed_of(name: str, ctx: MetricContext) -> list[str]:
    """What ``name`` costs beyond its passes, which the estimate leaves out."""
    parts = [UNTIMED_WORK[name]] if name in UNTIMED_WORK else []
    uses_domain = any("domain" in p.kinds for p in passes_of(name, ctx) or [])
    if uses_domain and not domain_classifier_ready(ctx):
        parts.append(TRAINS_CLASSIFIER)
    return parts


def domain_classifier_ready(ctx: MetricContext) -> bool:
    """Whether the domain classifier is built or cached (else its first use trains it)."""
    from .domain_classifier import cache_path

    return "domain_classifier" in vars(ctx.resources) or cache_path(ctx.data, ctx.resources.cache_dir).is_file()


class PassTimer:
    """Seconds per image of each kind of pass, each timed once on the first held-out batch."""

    def __init__(self, ctx: MetricContext):
        self.ctx = ctx
        self._seconds: dict[tuple[str, int], float] = {}

    def per_image(self, kind: str, k: int = 1) -> float:
        if (kind, k) not in self._seconds:
            self._seconds[kind, k] = self._time(kind, k)
        return self._seconds[kind, k]

    def _time(self, kind: str, k: int) -> float:
        ctx = self.ctx
        if kind == "likelihood":
            return ctx.likelihood_seconds_per_image(k)
        if kind == "domain" and not domain_classifier_ready(ctx):
            return 0.0  # timing it would train the classifier: named as untimed instead (untimed_of)
        x, y = ctx.probe_batch()
        family, device = ctx.family, ctx.family.device
        if kind == "inception":
            inception = ctx.resources.inception
            x = x[: inception.batch_size]
            return seconds_per_image(device, x.shape[0], lambda n: inception.features(unit(ctx, x[:n])))
        if kind == "generate":
            draw = family.sample_latent if ctx.prior is None else ctx.prior.sample_latent
            labels = family.sample_labels(x.shape[0]) if getattr(family, "conditional", False) else None
            return seconds_per_image(device, x.shape[0], lambda n: family.generate(draw(n), slice_of(labels, n)))
        step: Callable[[int], object] = {
            "reconstruct": lambda n: family.reconstruct(x[:n], y[:n]),
            "encode": lambda n: family.encode(x[:n], y[:n]),
            "classify": lambda n: family.classify(x[:n]),
            "domain": lambda n: ctx.resources.domain_classifier.features_and_logits(unit(ctx, x[:n])),
        }[kind]
        return seconds_per_image(device, x.shape[0], step)


def slice_of(labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
    return None if labels is None else labels[:n]


def unit(ctx: MetricContext, x: torch.Tensor) -> torch.Tensor:
    return to_unit(x, ctx.family.pixel_range)


def seconds_per_image(device: torch.device, images: int, run: Callable[[int], object]) -> float:
    """``run(images)`` timed after an untimed first call (which pays one-time set-up: memory,
    kernels), on a forked RNG: timing a pass never changes the values the evaluation computes."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        run(images)
        synchronize(device)
        started = time.perf_counter()
        run(images)
        synchronize(device)
        return (time.perf_counter() - started) / images


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def estimate_metrics(names: list[str], ctx: MetricContext) -> dict[str, Estimate | None]:
    """Each metric's estimated cost in the order they run (a shared pass counted for the first
    that makes it); None for a metric this module cannot estimate."""
    timer = ctx.pass_timer
    done: set[str] = set()
    estimates: dict[str, Estimate | None] = {}
    for name in names:
        passes = passes_of(name, ctx)
        if passes is None:
            estimates[name] = None
            continue
        untimed = untimed_of(name, ctx)
        if TRAINS_CLASSIFIER in untimed and TRAINS_CLASSIFIER in done:  # the first metric to need it trains it
            untimed.remove(TRAINS_CLASSIFIER)
        done.update(untimed)
        seconds, work = 0.0, []
        for p in passes:
            if p.shared in done:
                continue
            done.add(p.shared)
            seconds += p.images * sum(timer.per_image(kind, p.k) for kind in p.kinds)
            work.append(describe(p, ctx))
        work_done = ", ".join(work) or "the passes of an earlier metric"
        estimates[name] = Estimate(seconds, work_done, " + ".join(untimed))
    return estimates


def describe(p: Pass, ctx: MetricContext) -> str:
    if p.shared == "iwae":
        held_out = ctx.held_out_count()
        of = f" of {held_out}" if p.images < held_out else ""
        return f"{p.images}{of} held-out images x k={p.k}"
    if p.kinds[0] == "generate":
        return f"{p.images} samples"
    if p.shared == "codes":
        return f"{p.images} images encoded"
    return f"{p.images} {p.shared} images" if p.shared.endswith("reference") else f"{p.images} held-out images"


def cheaper_keys(cfg, held_out: int) -> str:
    """The keys that make the end-of-run evaluation cheaper, with their values."""
    images = "null: all" if cfg.final_max_images is None else str(cfg.final_max_images)
    iwae_images = "null" if cfg.iwae_max_images is None else cfg.iwae_max_images
    return (
        f"eval.final_max_images ({images} of {held_out} held-out images), eval.iwae_k ({cfg.iwae_k}), "
        f"eval.iwae_max_images ({iwae_images}), eval.final_n_samples ({cfg.final_n_samples}) and "
        "eval.final_metrics (drop the costly ones)"
    )
