"""The whole run's config, typed and checked before any data is loaded or model built.

``validate`` turns the composed Hydra config into a ``RunConfig``: each group is merged into
its dataclass (the family's, the dataset's, the optimizer's, and the four below, read from
``configs/{trainer,log,checkpoint,eval}/default.yaml``), then the checks that span groups run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config.checks import ConfigError, check_seed, folder_or_absent, non_negative, one_of, positive, require, typed
from .data import dataset_schema
from .models import FamilyConfig, family_class
from .models.nets import check_image_size
from .training.device import AMP_MODES
from .training.optim import OptimizerConfig, check_networks

NONFINITE_POLICIES = ("stop", "skip", "rollback")
TOP_LEVEL_KEYS = ("seed", "device", "resume", "model", "dataset", "optimizer", "trainer", "log", "checkpoint", "eval")


@dataclass
class TrainerConfig:
    max_steps: int | None = MISSING  # null: no step limit
    max_epochs: int | None = MISSING  # null: no epoch limit (one of the two must be set)
    batch_size: int = MISSING
    amp: str = MISSING  # off | bf16 | fp16 (CUDA only)
    deterministic: bool = MISSING  # torch.use_deterministic_algorithms
    grad_clip: float | None = MISSING  # max gradient norm per network; null: no clipping
    on_nonfinite: str = MISSING  # stop | skip | rollback
    max_skips: int = MISSING  # skip: steps in a row that may be skipped before stopping
    max_rollbacks: int = MISSING  # rollback: how many times per run
    rollback_lr_factor: float = MISSING  # rollback: every learning rate is multiplied by this
    compile: bool = MISSING  # torch.compile each network
    channels_last: bool = MISSING  # NHWC memory layout for the conv networks
    sync_batchnorm: bool = MISSING  # torchrun on CUDA: batch statistics over all ranks

    def __post_init__(self):
        if self.amp is False or self.amp in ("false", "none", "no"):  # YAML reads a bare `off` as false
            self.amp = "off"
        one_of(self.amp, AMP_MODES, "amp")
        positive(self.batch_size, "batch_size")
        positive(self.max_steps, "max_steps", allow_none=True)
        positive(self.max_epochs, "max_epochs", allow_none=True)
        require(
            self.max_steps is not None or self.max_epochs is not None,
            "max_steps",
            "trainer.max_steps and trainer.max_epochs are both null; set at least one",
        )
        positive(self.grad_clip, "grad_clip", allow_none=True)
        one_of(self.on_nonfinite, NONFINITE_POLICIES, "on_nonfinite")
        non_negative(self.max_skips, "max_skips")
        non_negative(self.max_rollbacks, "max_rollbacks")
        require(
            0 < self.rollback_lr_factor <= 1, "rollback_lr_factor", f"must be in (0, 1], got {self.rollback_lr_factor}"
        )


@dataclass
class LogConfig:
    every_n_steps: int = MISSING  # scalars (mean over the interval)
    image_every_n_steps: int = MISSING  # sample and reconstruction grids
    n_samples: int = MISSING  # images in the fixed-latent sample grid
    progress_bar: bool = MISSING

    def __post_init__(self):
        positive(self.every_n_steps, "every_n_steps")
        positive(self.image_every_n_steps, "image_every_n_steps")
        positive(self.n_samples, "n_samples")


@dataclass
class CheckpointConfig:
    every_n_steps: int = MISSING
    keep_last: int = MISSING  # older checkpoints are deleted once a newer one is on disk
    keep_best: bool = MISSING  # also keep the state at the best eval.optimized_metric as best.pt

    def __post_init__(self):
        positive(self.every_n_steps, "every_n_steps")
        positive(self.keep_last, "keep_last")


INCEPTION_REFERENCES = ("test", "train")  # eval.inception_reference: which split inception_fid/kid compare with
INCEPTION_PRECISIONS = ("auto", "fp32", "bf16")  # eval.inception_precision (metrics/inception.py)


@dataclass
class EvalConfig:
    every_n_steps: int = MISSING  # held-out evaluation during training
    max_images: int = MISSING  # images used by each evaluation during training
    final_max_images: int | None = MISSING  # at the end; null: the whole held-out split
    batch_size: int = MISSING
    metrics: list[str] = MISSING  # sample metrics during training (metrics/<value>)
    n_samples: int = MISSING  # generated images per evaluation during training
    final_metrics: list[str] = MISSING  # at the end: metrics.json and the HPARAMS tab
    final_n_samples: int = MISSING
    inception_on_cpu: bool = MISSING  # run Inception FID on CPU too (slow)
    inception_reference: str = MISSING  # the Inception metrics' real images: test (held-out split) or train
    # the Inception network's arithmetic: auto | fp32 | bf16 (a default: checkpoints older than the key load)
    inception_precision: str = "auto"
    iwae_k: int = MISSING  # importance samples of the IWAE bound
    # held-out images of the IWAE bound: auto | null (all) | N (a default: checkpoints older than the key load)
    iwae_max_images: Any = "auto"
    probe_max_images: int | None = MISSING  # training codes for the linear probe; null: all
    optimized_metric: str = MISSING  # the final value train.py returns to a sweeper
    cache_dir: str = MISSING  # domain classifiers and reference statistics

    def __post_init__(self):
        from .metrics.registry import METRIC_NAMES, METRICS, MIN_REFERENCE

        positive(self.every_n_steps, "every_n_steps")
        positive(self.max_images, "max_images")
        positive(self.final_max_images, "final_max_images", allow_none=True)
        positive(self.batch_size, "batch_size")
        for key in ("metrics", "final_metrics"):
            for name in getattr(self, key):
                one_of(name, METRIC_NAMES, key)
        positive(self.n_samples, "n_samples")
        positive(self.final_n_samples, "final_n_samples")
        one_of(self.inception_reference, INCEPTION_REFERENCES, "inception_reference")
        one_of(self.inception_precision, INCEPTION_PRECISIONS, "inception_precision")
        folder_or_absent(self.cache_dir, "cache_dir")
        for count_key, metrics_key in (("n_samples", "metrics"), ("final_n_samples", "final_metrics")):
            comparing = [name for name in getattr(self, metrics_key) if "reference" in METRICS[name].needs]
            require(
                not comparing or getattr(self, count_key) >= MIN_REFERENCE,
                count_key,
                f"must be >= {MIN_REFERENCE} for eval.{metrics_key} {', '.join(comparing)} "
                f"(they compare samples with held-out images), got {getattr(self, count_key)}",
            )
        require(self.iwae_k >= 1, "iwae_k", f"must be >= 1, got {self.iwae_k}")
        cap = self.iwae_max_images
        require(
            cap in (AUTO, None) or (isinstance(cap, int) and not isinstance(cap, bool) and cap > 0),
            "iwae_max_images",
            f"got {cap!r}; allowed: auto (the whole held-out split unless that takes longer than the training), "
            "null (the whole split) or a positive number of images",
        )
        positive(self.probe_max_images, "probe_max_images", allow_none=True)
        reported = [value for name in self.final_metrics for value in METRICS[name].values]
        require(
            self.optimized_metric == AUTO or self.optimized_metric in reported,
            "optimized_metric",
            f"got {self.optimized_metric!r}, which eval.final_metrics does not report; "
            f"allowed: auto, {', '.join(reported) or '(eval.final_metrics is empty)'}",
        )


AUTO = "auto"  # eval.optimized_metric: chosen when the data is loaded (choose_optimized_metric)
AUTO_ORDER = ("domain_fid", "inception_fid", "recon_mse")


def choose_optimized_metric(
    run: RunConfig, family, *, has_labels: bool, held_out: int, held_out_key: str, on_cpu: bool
) -> tuple[str | None, str]:
    """The value ``eval.optimized_metric`` stands for on this data and device, and why: itself,
    checked (a ConfigError before training when it cannot be computed here), or for ``auto`` the
    first of ``AUTO_ORDER`` the final metrics report and this family, data and device allow:
    domain FID on labelled data, else Inception FID (installed, and CUDA or
    ``eval.inception_on_cpu``), else the reconstruction error; None, with each candidate's
    reason, when none of them can be computed. ``held_out_key`` sets the held-out split's size."""
    from .metrics.evaluate import inception_installed
    from .metrics.registry import METRICS, VALUE_NAMES, too_few_to_compare, unmet_need

    def why_not(name: str) -> str | None:
        metric = METRICS[VALUE_NAMES[name]]
        if metric.name not in run.eval.final_metrics:
            return "eval.final_metrics does not compute it"
        reason = unmet_need(
            metric,
            family_cls=family,
            has_labels=has_labels,
            held_out=held_out,
            conditional=run.model.conditional,
            inception="inception" not in metric.needs or inception_installed(),
        )
        if reason is None and "inception" in metric.needs and on_cpu and not run.eval.inception_on_cpu:
            reason = (
                "Inception metrics are skipped on the CPU unless eval.inception_on_cpu=true "
                "(10 to 26 images/s per core: scripts/benchmark_inception.py)"
            )
        if reason is not None and reason == too_few_to_compare(held_out=held_out, n_samples=None):
            reason += f" (hold out more images: {held_out_key})"
        return reason

    auto = next((name for name in AUTO_ORDER if why_not(name) is None), None)
    name = run.eval.optimized_metric
    if name != AUTO:
        reason = why_not(name)
        require(
            reason is None,
            "eval.optimized_metric",
            f"{name} cannot be computed for model={run.model.name} on this data: {reason}; "
            f"use eval.optimized_metric=auto (here: {auto or 'nothing'}) or another value",
        )
        return name, "as set"
    if auto is not None:
        return auto, "the first of " + ", ".join(AUTO_ORDER) + " computable here"
    return None, "nothing to optimize here (" + "; ".join(f"{n}: {why_not(n)}" for n in AUTO_ORDER) + ")"


def check_optimized_metric(run: RunConfig, family) -> None:
    """The value a sweeper minimises must be one this family can produce."""
    from .metrics.registry import METRICS, VALUE_NAMES, unmet_need

    name = run.eval.optimized_metric
    if name == AUTO:
        return
    metric = METRICS[VALUE_NAMES[name]]
    reason = unmet_need(metric, family_cls=family, has_labels=None, inception=True, conditional=run.model.conditional)
    if reason is None and "inception" in metric.needs and run.device == "cpu" and not run.eval.inception_on_cpu:
        reason = "Inception metrics are skipped on the CPU unless eval.inception_on_cpu=true"
    require(
        reason is None,
        "eval.optimized_metric",
        f"{name} cannot be computed for model={run.model.name}: "
        f"{reason}; pick a value of another metric (domain_fid works for every family on labelled data)",
    )


@dataclass
class RunConfig:
    seed: int
    device: str
    resume: str | None
    model: FamilyConfig
    dataset: Any
    optimizer: OptimizerConfig
    trainer: TrainerConfig
    log: LogConfig
    checkpoint: CheckpointConfig
    eval: EvalConfig
    resolved: dict  # the plain resolved config, stored in checkpoints


def validate(cfg: DictConfig) -> RunConfig:
    """Check the composed config; raise ConfigError naming the first bad key."""
    try:
        resolved = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))  # a DictConfig: a dict
    except OmegaConfBaseException as err:
        raise ConfigError(
            getattr(err, "full_key", "") or "config", f"cannot be resolved: {str(err).splitlines()[0]}"
        ) from None
    unknown = sorted(set(resolved) - set(TOP_LEVEL_KEYS))
    require(
        not unknown,
        unknown[0] if unknown else "",
        f"unknown top-level key; the top-level keys are: {', '.join(TOP_LEVEL_KEYS)}",
    )
    for key in TOP_LEVEL_KEYS[3:]:
        require(isinstance(resolved.get(key), dict), key, f"missing config group {key}")
    check_seed(resolved.get("seed"), "seed")
    require(isinstance(resolved.get("device"), str), "device", "must be a string (auto, cpu, cuda, cuda:N, mps)")
    require(
        resolved.get("resume") is None or isinstance(resolved["resume"], str),
        "resume",
        "must be auto, a checkpoint file or a run directory path",
    )

    family = family_class(str(resolved["model"].get("name")))
    model = typed(family.config_class, resolved["model"], "model")
    dataset: Any = typed(dataset_schema(str(resolved["dataset"].get("name"))), resolved["dataset"], "dataset")
    run = RunConfig(
        seed=resolved["seed"],
        device=resolved["device"],
        resume=resolved["resume"],
        model=model,
        dataset=dataset,
        optimizer=typed(OptimizerConfig, resolved["optimizer"], "optimizer"),
        trainer=typed(TrainerConfig, resolved["trainer"], "trainer"),
        log=typed(LogConfig, resolved["log"], "log"),
        checkpoint=typed(CheckpointConfig, resolved["checkpoint"], "checkpoint"),
        eval=typed(EvalConfig, resolved["eval"], "eval"),
        resolved=resolved,
    )
    if hasattr(dataset, "seed"):  # the generated or split data's own seed goes through the same generators
        check_seed(dataset.seed, "dataset.seed")
    check_image_size(model.net, dataset.image_size)
    if hasattr(model, "check_image_size"):  # a family's own size-dependent checks (VAE-GAN's feature_layer)
        model.check_image_size(dataset.image_size)
    check_networks(run.optimizer, model.name, family.network_names)
    check_optimized_metric(run, family)
    return run
