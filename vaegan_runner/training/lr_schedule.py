"""Learning-rate schedules, per training step, from ``configs/optimizer/schedule/default.yaml``.

    constant   the base lr throughout
    linear     from the base lr down to ``final_factor`` x base at the last step (mimicry's GAN recipe)
    cosine     half a cosine from the base lr down to ``final_factor`` x base at the last step
    step       the base lr times ``gamma`` every ``step_every`` steps, or at each of ``milestones``

Each may start with a linear warm-up from 0 over ``warmup_steps``. The curve is a pure function
of the step, applied to every network's optimizer through torch's ``LambdaLR`` (so a per-network
lr keeps its ratio to the others); the schedulers' states travel in checkpoints.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial

import torch
from omegaconf import MISSING

from ..config.checks import non_negative, one_of, positive, require

SCHEDULES = ("constant", "linear", "cosine", "step")


@dataclass
class ScheduleConfig:
    name: str = MISSING
    warmup_steps: int = MISSING
    final_factor: float = MISSING
    step_every: int | None = MISSING
    milestones: list[int] | None = MISSING
    gamma: float = MISSING

    def __post_init__(self):
        one_of(self.name, SCHEDULES, "schedule.name")
        non_negative(self.warmup_steps, "schedule.warmup_steps")
        require(
            0.0 <= self.final_factor <= 1.0,
            "schedule.final_factor",
            f"must be in [0, 1] (the last step's lr as a fraction of the base lr), got {self.final_factor}",
        )
        require(0.0 < self.gamma <= 1.0, "schedule.gamma", f"must be in (0, 1], got {self.gamma}")
        if self.name == "step":
            require(
                (self.step_every is None) != (self.milestones is None),
                "schedule.step_every",
                "schedule.name=step needs exactly one of step_every (decay every this many steps, "
                "e.g. optimizer.schedule.step_every=10000) and milestones (decay at these steps, "
                "e.g. optimizer.schedule.milestones=[20000,35000])",
            )
        positive(self.step_every, "schedule.step_every", allow_none=True)
        if self.milestones is not None:
            require(
                all(m > 0 for m in self.milestones) and list(self.milestones) == sorted(set(self.milestones)),
                "schedule.milestones",
                f"must be increasing positive steps, got {list(self.milestones)}",
            )


def lr_factor(cfg: ScheduleConfig, step: int, total_steps: int | None) -> float:
    """The multiplier of the base lr for the update at ``step`` (0-based) of ``total_steps``
    (None: not known, which only ``linear`` and ``cosine`` cannot do without)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.name == "step":
        if cfg.milestones is not None:
            return cfg.gamma ** sum(step >= m for m in cfg.milestones)
        assert cfg.step_every is not None  # __post_init__: step needs step_every or milestones
        return cfg.gamma ** ((step - cfg.warmup_steps) // cfg.step_every)
    if cfg.name == "constant":
        return 1.0
    if total_steps is None:
        raise ValueError(f"schedule.name={cfg.name} decays over the whole run: it needs the run's total_steps")
    span = max(1, total_steps - 1 - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    shape = 1.0 - progress if cfg.name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.final_factor + (1.0 - cfg.final_factor) * shape


def build_schedulers(
    cfg: ScheduleConfig, optimizers: dict[str, torch.optim.Optimizer], total_steps: int | None
) -> dict[str, torch.optim.lr_scheduler.LambdaLR]:
    """One ``LambdaLR`` per optimizer; ``step()`` once per training step moves all of them."""
    curve = partial(lr_factor, cfg, total_steps=total_steps)
    with warnings.catch_warnings():  # LambdaLR's constructor may warn about an unstepped optimizer
        warnings.simplefilter("ignore")
        return {name: torch.optim.lr_scheduler.LambdaLR(opt, curve) for name, opt in optimizers.items()}


def step_schedulers(schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]) -> None:
    """Advance every scheduler by one training step. A step on which a network did not update
    (a generator every n_critic steps, a skipped non-finite step) still advances its curve."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
        for scheduler in schedulers.values():
            scheduler.step()


def scale_base_lrs(schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR], factor: float) -> None:
    """Multiply every scheduler's base lr (and so its current lr) by ``factor`` (a rollback)."""
    for scheduler in schedulers.values():
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
        for (
            group,
            lr,
        ) in zip(scheduler.optimizer.param_groups, scheduler.get_last_lr()):
            group["lr"] = lr * factor
        scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
