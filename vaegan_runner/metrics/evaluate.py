"""The evaluation: the named metrics of ``registry.py`` run against a family, shown and stoppable.

``evaluate_metrics`` skips what cannot run here with the reason, says what the rest will cost,
runs each on the same seeded samples (``context.py``), and when a signal stops it keeps what was
computed. Evaluating never touches the training run's randomness: it runs on a forked RNG stream
seeded with ``SAMPLE_SEED``, with the networks in eval mode, and puts the training mode back
afterwards.
"""

from __future__ import annotations

import time

import torch

from ..models import Family
from ..models.fitted_prior import ExPostPrior
from .context import MetricContext
from .fingerprints import SAMPLE_SEED
from .progress import EvaluationStopped, Progress
from .registry import METRICS, MetricSkipped, unmet_need
from .resources import MetricResources
from .results import STOPPED, MetricResults


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
    ctx.metric_names = runnable
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
        reason = "skipped on CPU (40 s to 2 min per 1000 images per core); set eval.inception_on_cpu=true to run it"
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
    count = f"{len(names)} metric{'s' if len(names) != 1 else ''}"
    ctx.progress.say(f"evaluation: {count}, ~{format_seconds(total)} (each pass timed on one batch)")
    for name, estimate in estimates.items():
        ctx.progress.say(f"  {name} {estimate if estimate is not None else 'not estimated'}")
    if ctx.training_seconds is not None and total > ctx.training_seconds:
        ctx.progress.say(
            f"the evaluation (~{format_seconds(total)}) will take longer than the training "
            f"({format_seconds(ctx.training_seconds)}); cheaper: {cheaper_keys(ctx.cfg, len(ctx.data.test))}"
        )
    return {name: f"~{format_seconds(e.seconds)}" for name, e in estimates.items() if e is not None}
