"""Held-out evaluation during and after training: the family's own scalars (``eval/``), the
metrics (``metrics/`` during training, ``final/`` at the end) and the mode-collapse warning."""

from __future__ import annotations

import torch

from ..data import ImageData
from ..data.pixels import to_pixels as scale_images
from ..metrics.collapse import CollapseWatch
from ..metrics.evaluate import evaluate_metrics
from ..metrics.progress import Progress
from ..metrics.resources import MetricResources
from ..metrics.results import MetricResults
from ..models import Family


class HeldOut:
    """Evaluates ``family`` on ``data``'s held-out split as ``cfg`` (the ``eval`` settings) asks,
    writing to ``log`` (a RunLog)."""

    def __init__(self, cfg, family: Family, data: ImageData, log):
        self.cfg, self.family, self.data, self.log = cfg, family, data, log
        self.resources = MetricResources(data, cfg, family.device, log.write)
        self.collapse = CollapseWatch(data.num_classes)

    def during_training(self, step: int, family_scalars: bool = True) -> dict[str, float]:
        """``eval/`` (unless ``family_scalars`` is false) and ``metrics/`` at ``step``; a warning
        when the metrics show mode collapse. Returns the metric values."""
        cfg = self.cfg
        if family_scalars:
            self.log.scalars("eval", held_out_scalars(self.family, self.data, cfg.max_images, cfg.batch_size), step)
        results = evaluate_metrics(
            cfg.metrics,
            self.family,
            self.resources,
            n_samples=cfg.n_samples,
            max_images=cfg.max_images,
            inception_on_cpu=cfg.inception_on_cpu,
        )
        self.log.scalars("metrics", results.values, step)
        warning = self.collapse.check(results.values)
        if warning:
            self.log.warning(warning, step)
        return results.values

    def final_scalars(self, step: int) -> dict[str, float]:
        """The family's scalars over ``eval.final_max_images`` images, logged as ``eval/``."""
        final = held_out_scalars(self.family, self.data, self.cfg.final_max_images, self.cfg.batch_size)
        self.log.scalars("eval", final, step)
        return final

    def final_metrics(
        self, step: int, progress: Progress | None = None, training_seconds: float | None = None
    ) -> MetricResults:
        """``eval.final_metrics``, logged as ``final/``; shown and stoppable through ``progress``,
        kept near ``training_seconds`` (``evaluate_metrics``)."""
        cfg = self.cfg
        results = evaluate_metrics(
            cfg.final_metrics,
            self.family,
            self.resources,
            n_samples=cfg.final_n_samples,
            max_images=cfg.final_max_images,
            inception_on_cpu=cfg.inception_on_cpu,
            progress=progress,
            training_seconds=training_seconds,
        )
        self.log.scalars("final", results.values, step)
        return results

    @property
    def final_images(self) -> int:
        """How many held-out images the final evaluation uses."""
        return eval_count(self.data, self.cfg.final_max_images)


def eval_count(data: ImageData, max_images: int | None) -> int:
    return len(data.test) if max_images is None else min(max_images, len(data.test))


@torch.no_grad()
def held_out_scalars(family: Family, data: ImageData, max_images: int | None, batch_size: int) -> dict[str, float]:
    """Mean of ``family.evaluate`` over the first ``max_images`` held-out images.

    Runs on its own RNG stream, so evaluating never changes the training run's randomness.
    """
    limit = eval_count(data, max_images)
    family.eval()
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    devices = [family.device] if family.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        for images, labels in data.test.batches(batch_size, epoch=0, seed=0, shuffle=False, drop_last=False):
            images, labels = images[: limit - seen], labels[: limit - seen]
            for name, value in family.evaluate(scale_images(images, family.pixel_range), labels).items():
                sums[name] = sums.get(name, 0) + value.float() * images.shape[0]
            seen += images.shape[0]
            if seen >= limit:
                break
    family.train()
    if not sums:
        return {}
    names = list(sums)
    return dict(zip(names, (torch.stack([sums[n] for n in names]) / seen).tolist()))
