"""A training run's checkpoints: its live state written as a ``Checkpoint``, and read back.

The live state is the family's weights, the phase runner's optimizers, schedules and loss
scaler, every RNG state, the step and the rollbacks used so far; rank 0 alone writes. With
``checkpoint.keep_best``, the state at the best ``eval.optimized_metric`` seen during training is
also kept as ``checkpoints/best.pt``, which ``checkpoint.keep_last`` never deletes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config.checks import ConfigError
from ..config.run_dir import CHECKPOINT_DIR
from ..data import ImageData
from ..models import Family
from .checkpoint import (
    Checkpoint,
    RunMeta,
    best_path,
    checkpoint_path,
    list_checkpoints,
    read_checkpoint,
    save_checkpoint,
)
from .distributed import Distributed
from .optim import configured_lr
from .phase_runner import PhaseRunner
from .rng_state import restore_rng_state, rng_state


@dataclass
class NewestReadable:
    """The newest of some checkpoints that loads, and the newer ones that did not (a run
    killed mid-write on a filesystem without atomic renames, a copy cut short)."""

    path: Path | None  # None: none of them loads, or there were none
    saved: Checkpoint | None
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (checkpoint, why it did not load), newest first

    def fallback_note(self) -> str | None:
        """One line naming each skipped checkpoint, why, and the one used; None when none was skipped."""
        if not self.skipped or self.path is None:
            return None
        skipped = "; ".join(f"{path} {why}" for path, why in self.skipped)
        return f"{skipped}: using {self.path.name}, the newest readable one"

    def none_readable(self, key: str, folder: Path) -> ConfigError:
        """The error for a folder none of whose checkpoints loads, naming each with why."""
        return ConfigError(
            key,
            f"no readable checkpoint in {folder}: {'; '.join(f'{path} {why}' for path, why in self.skipped)}. "
            "Give another run directory or checkpoint file",
        )


def newest_readable(checkpoints: list[Path], key: str = "resume") -> NewestReadable:
    """Read ``checkpoints`` (oldest first, as ``list_checkpoints`` gives them) newest first and
    stop at the first that loads; the newer ones that did not are kept with why."""
    skipped: list[tuple[Path, str]] = []
    for path in reversed(checkpoints):
        try:
            return NewestReadable(path, read_checkpoint(path, key=key), skipped)
        except ConfigError as err:
            skipped.append((path, unreadable_reason(str(err), key, path)))
    return NewestReadable(None, None, skipped)


def unreadable_reason(message: str, key: str, path: Path) -> str:
    """Why ``path`` did not load, from ``load_checkpoint``'s error ``message``: its first clause,
    without the key, the path and the advice that follows (which names what to give instead)."""
    reason = message.removeprefix(f"{key}: ").removeprefix(f"{path} ")
    cut = min((i for i in (reason.find(". Give "), reason.find("; give ")) if i >= 0), default=len(reason))
    return reason[:cut]


class RunCheckpoints:
    """Saves ``family`` and ``runner`` to ``run_dir/checkpoints`` and restores them from a checkpoint."""

    def __init__(self, run, family: Family, runner: PhaseRunner, data: ImageData, run_dir: Path, dist: Distributed):
        self.family, self.runner, self.run_dir, self.dist = family, runner, Path(run_dir), dist
        self.config, self.keep_last = run.resolved, run.checkpoint.keep_last
        self.keep_best, self.metric = run.checkpoint.keep_best, run.eval.optimized_metric
        self.best: dict | None = None  # {"metric", "value", "step"} of best.pt
        if self.keep_best and dist.is_main and self.metric not in during_training_values(run.eval.metrics):
            logging.getLogger("vaegan_runner").warning(
                "checkpoint.keep_best: eval.optimized_metric=%s is not computed during training (eval.metrics: %s), "
                "so no best checkpoint will be kept",
                self.metric,
                ", ".join(run.eval.metrics),
            )
        self.meta = RunMeta(
            model=run.model.name,
            dataset=data.name,
            channels=data.channels,
            image_size=data.image_size,
            latent_dim=family.latent_dim,
            num_classes=data.num_classes,
            conditional=family.conditional,
            labelled=None if data.labelled is None else int(data.labelled.labels.shape[0]),
        )

    def record(self, step: int, rollbacks: int) -> Checkpoint:
        optimizers, scaler, schedulers = self.runner.state_dicts()
        return Checkpoint(
            family=self.family.state_dict(),
            config=self.config,
            step=step,
            optimizers=optimizers,
            scaler=scaler,
            rng=rng_state(),
            meta=self.meta,
            rollbacks=rollbacks,
            schedulers=schedulers,
            best=self.best,
        )

    def save(self, step: int, rollbacks: int) -> Path | None:
        """Write the checkpoint of ``step`` (rank 0; the others write nothing and get None)."""
        if not self.dist.is_main:
            return None
        path = checkpoint_path(self.run_dir, step)
        save_checkpoint(self.record(step, rollbacks), path, self.keep_last)
        return path

    def save_unless_saved(self, step: int, rollbacks: int) -> Path:
        """The checkpoint of ``step``, written now unless it already was."""
        path = checkpoint_path(self.run_dir, step)
        if not path.is_file():
            self.save(step, rollbacks)
        return path

    def last(self) -> Path | None:
        found = list_checkpoints(self.run_dir / CHECKPOINT_DIR)
        return found[-1] if found else None

    def restore(self, saved: Checkpoint) -> tuple[int, int]:
        """Load ``saved`` into the live objects; returns (the step to continue from, the
        rollbacks used so far)."""
        self.family.load_state_dict(saved.family)
        self.runner.load_state_dicts(saved.optimizers, saved.scaler, saved.schedulers)
        self.apply_changed_learning_rates(saved.config.get("optimizer", {}))
        assert saved.rng is not None  # every checkpoint this runner writes holds its RNG state
        restore_rng_state(saved.rng)
        self.best = self.best_on_disk(saved.best)
        return saved.step, saved.rollbacks

    def best_on_disk(self, fallback: dict | None) -> dict | None:
        """The record of ``best.pt`` as written (a checkpoint's own copy can be older: the last
        step's checkpoint is written before the final evaluation), else ``fallback``; None when
        it scores another metric than this run's ``eval.optimized_metric``."""
        record, path = fallback, best_path(self.run_dir)
        if path.is_file():
            try:
                record = read_checkpoint(path).best or record
            except ConfigError:  # unreadable: the next better evaluation replaces it
                record = None
        return record if record and record.get("metric") == self.metric else None

    def apply_changed_learning_rates(self, saved_optimizer: dict) -> None:
        """A run resumed with another ``optimizer.lr`` (or ``optimizer.<network>.lr``) than its
        checkpoint's, as after a divergence, trains on at the new rate: the restored rate and
        the rest of its schedule (rollback factors included) are scaled by new / old."""
        if "lr" not in saved_optimizer:
            return
        for network in self.runner.optimizers:
            old, new = configured_lr(saved_optimizer, network), configured_lr(self.config["optimizer"], network)
            if new != old:
                self.runner.scale_learning_rates(new / old, [network])
                logging.getLogger("vaegan_runner").info(
                    "resumed with the %s's learning rate %g (the checkpoint's run had %g)", network, new, old
                )

    def consider_best(self, step: int, rollbacks: int, values: dict[str, float]) -> Path | None:
        """Keep the state at ``step`` as ``best.pt`` when ``values`` (the metrics of an evaluation
        during training) hold a better ``eval.optimized_metric`` than any before; the path, if written."""
        from ..metrics.registry import lower_is_better

        value = values.get(self.metric)
        if not (self.keep_best and self.dist.is_main) or value is None or value != value:  # NaN: never best
            return None
        if self.best is not None:
            better = value < self.best["value"] if lower_is_better(self.metric) else value > self.best["value"]
            if not better:
                return None
        self.best = {"metric": self.metric, "value": float(value), "step": step}
        path = best_path(self.run_dir)
        save_checkpoint(self.record(step, rollbacks), path, self.keep_last)
        return path

    def roll_back(self, path: Path, lr_factor: float) -> int:
        """Load the checkpoint at ``path`` and scale every learning rate by ``lr_factor``;
        returns its step."""
        step, _ = self.restore(read_checkpoint(path))
        self.runner.scale_learning_rates(lr_factor)
        return step


def during_training_values(metric_names: list[str]) -> set[str]:
    """The value names that the metrics ``metric_names`` (``eval.metrics``) report."""
    from ..metrics.registry import METRICS

    return {value for name in metric_names for value in METRICS[name].values}
