"""The whole run's config, typed and checked before any data is loaded or model built.

``validate`` turns the composed Hydra config into a ``RunConfig``: each group is merged into
its dataclass (the family's, the dataset's, the optimizer's, and the four below, read from
``configs/{trainer,log,checkpoint,eval}/default.yaml``), then the checks that span groups run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config import ConfigError, one_of, positive, require, typed
from .data import dataset_schema
from .device import AMP_MODES
from .models import FamilyConfig, family_class
from .nets import check_image_size
from .optim import OptimizerConfig, check_networks

TOP_LEVEL_KEYS = ("seed", "device", "resume", "model", "dataset", "optimizer", "trainer", "log",
                  "checkpoint", "eval")


@dataclass
class TrainerConfig:
    max_steps: int | None = MISSING   # null: no step limit
    max_epochs: int | None = MISSING  # null: no epoch limit (one of the two must be set)
    batch_size: int = MISSING
    amp: str = MISSING                # off | bf16 | fp16 (CUDA only)
    deterministic: bool = MISSING     # torch.use_deterministic_algorithms
    grad_clip: float | None = MISSING  # max gradient norm per network; null: no clipping

    def __post_init__(self):
        if self.amp is False or self.amp in ("false", "none", "no"):  # YAML reads a bare `off` as false
            self.amp = "off"
        one_of(self.amp, AMP_MODES, "amp")
        positive(self.batch_size, "batch_size")
        positive(self.max_steps, "max_steps", allow_none=True)
        positive(self.max_epochs, "max_epochs", allow_none=True)
        require(self.max_steps is not None or self.max_epochs is not None, "max_steps",
                "trainer.max_steps and trainer.max_epochs are both null; set at least one")
        positive(self.grad_clip, "grad_clip", allow_none=True)


@dataclass
class LogConfig:
    every_n_steps: int = MISSING        # scalars (mean over the interval)
    image_every_n_steps: int = MISSING  # sample and reconstruction grids
    n_samples: int = MISSING            # images in the fixed-latent sample grid
    progress_bar: bool = MISSING

    def __post_init__(self):
        positive(self.every_n_steps, "every_n_steps")
        positive(self.image_every_n_steps, "image_every_n_steps")
        positive(self.n_samples, "n_samples")


@dataclass
class CheckpointConfig:
    every_n_steps: int = MISSING
    keep_last: int = MISSING  # older checkpoints are deleted once a newer one is on disk

    def __post_init__(self):
        positive(self.every_n_steps, "every_n_steps")
        positive(self.keep_last, "keep_last")


@dataclass
class EvalConfig:
    every_n_steps: int = MISSING         # held-out evaluation during training
    max_images: int = MISSING            # images used by each evaluation during training
    final_max_images: int | None = MISSING  # at the end; null: the whole held-out split
    batch_size: int = MISSING

    def __post_init__(self):
        positive(self.every_n_steps, "every_n_steps")
        positive(self.max_images, "max_images")
        positive(self.final_max_images, "final_max_images", allow_none=True)
        positive(self.batch_size, "batch_size")


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
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(getattr(err, "full_key", "") or "config",
                          f"cannot be resolved: {str(err).splitlines()[0]}") from None
    unknown = sorted(set(resolved) - set(TOP_LEVEL_KEYS))
    require(not unknown, unknown[0] if unknown else "", f"unknown top-level key; the top-level "
            f"keys are: {', '.join(TOP_LEVEL_KEYS)}")
    for key in TOP_LEVEL_KEYS[3:]:
        require(isinstance(resolved.get(key), dict), key, f"missing config group {key}")
    require(isinstance(resolved.get("seed"), int) and not isinstance(resolved["seed"], bool),
            "seed", f"must be an integer, got {resolved.get('seed')!r}")
    require(isinstance(resolved.get("device"), str), "device", "must be a string (auto, cpu, cuda, cuda:N, mps)")
    require(resolved.get("resume") is None or isinstance(resolved["resume"], str), "resume",
            "must be a checkpoint file or run directory path")

    family = family_class(str(resolved["model"].get("name")))
    model = typed(family.config_class, resolved["model"], "model")
    dataset = typed(dataset_schema(str(resolved["dataset"].get("name"))), resolved["dataset"], "dataset")
    run = RunConfig(
        seed=resolved["seed"], device=resolved["device"], resume=resolved["resume"],
        model=model, dataset=dataset,
        optimizer=typed(OptimizerConfig, resolved["optimizer"], "optimizer"),
        trainer=typed(TrainerConfig, resolved["trainer"], "trainer"),
        log=typed(LogConfig, resolved["log"], "log"),
        checkpoint=typed(CheckpointConfig, resolved["checkpoint"], "checkpoint"),
        eval=typed(EvalConfig, resolved["eval"], "eval"),
        resolved=resolved,
    )
    check_image_size(model.net, dataset.image_size)
    check_networks(run.optimizer, model.name, family.network_names)
    return run
