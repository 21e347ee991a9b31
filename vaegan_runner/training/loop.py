"""The training loop. It knows phases, networks and optimizers, never a family by name.

``fit`` reads top to bottom: set up (the phase runner, resume, the log, snapshots, held-out
evaluation, checkpoints, the non-finite policy), then for each batch run the family's phases
that are due, then log, snapshot, evaluate and checkpoint on their schedules; ``finish``
evaluates on the held-out split and writes ``samples.png``, a last checkpoint and
``metrics.json``; a signal during that evaluation stops it, and ``metrics.json`` says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config.checks import ConfigError
from ..data import ImageData, training_batches
from ..data.pixels import to_pixels as scale_images
from ..metrics.progress import Progress
from ..metrics.results import STOPPED
from ..models import Family
from ..run_schema import RunConfig
from .checkpoint import Checkpoint
from .distributed import Distributed
from .held_out import HeldOut
from .nonfinite import NonFinitePolicy
from .phase_runner import NonFiniteStep, PhaseRunner
from .run_checkpoints import RunCheckpoints
from .run_log import RunLog
from .run_record import (
    FINAL,
    evaluation_complete,
    final_values,
    finished_results,
    hparam_values,
    protocol_hparams,
    write_metrics_json,
)
from .snapshots import Snapshots
from .stopping import EvaluationInterrupted, Interrupted, StopRequest


def epoch_length(data: ImageData, batch_size: int) -> int:
    """Steps per epoch; a batch larger than the training split is refused."""
    steps = data.train.num_batches(batch_size)
    if steps == 0:
        raise ConfigError(
            "trainer.batch_size",
            f"{batch_size} is larger than the {len(data.train)} training images of dataset={data.name}",
        )
    return steps


def total_steps(run: RunConfig, steps_per_epoch: int) -> int:
    limits = [run.trainer.max_steps, run.trainer.max_epochs and run.trainer.max_epochs * steps_per_epoch]
    return min(n for n in limits if n)


def fit(
    run: RunConfig,
    family: Family,
    data: ImageData,
    run_dir: Path,
    resume: Checkpoint | None = None,
    dist: Distributed | None = None,
    stop: StopRequest | None = None,
) -> dict[str, float]:
    """Train ``family`` on ``data`` (continuing from ``resume``); returns the final held-out
    evaluation (``eval/<name>``) and the final metrics (by value name). Under ``torchrun`` every
    rank calls this; rank 0 alone logs, evaluates and writes files, the others return {}."""
    dist = dist or Distributed()
    device, batch_size = family.device, run.trainer.batch_size
    shard = dist.shard(batch_size)
    steps_per_epoch = epoch_length(data, batch_size)
    total = total_steps(run, steps_per_epoch)
    runner = PhaseRunner.for_run(run, family, dist, total)
    checkpoints = RunCheckpoints(run, family, runner, data, run_dir, dist)
    step, rollbacks = 0, 0
    if resume is not None:
        step, rollbacks = checkpoints.restore(resume)
        if step >= total and evaluation_complete(run_dir / "metrics.json"):  # a stopped evaluation runs again
            return finished_results(run_dir / "metrics.json")
        if dist.rank:  # rank 0 continues the saved RNG stream; the others get their own
            torch.manual_seed(run.seed + 1_000_003 * dist.rank + step)
    log = RunLog(run_dir if dist.is_main else None, step, total, run.log.progress_bar, reduce=dist.mean)
    snapshots = Snapshots(family, data, log, run.log.n_samples, run.seed, run.log.image_every_n_steps)
    held_out = HeldOut(run.eval, family, data, log)
    nonfinite = NonFinitePolicy(run.trainer, runner, checkpoints, log, rollbacks)
    if run.trainer.on_nonfinite == "rollback" and checkpoints.last() is None:
        checkpoints.save(step, rollbacks)  # something to roll back to before the first scheduled checkpoint

    family.train()
    started, first_step = time.perf_counter(), step
    while step < total:
        epoch, start = divmod(step, steps_per_epoch)
        for images, labels in training_batches(data, batch_size, epoch=epoch, seed=run.seed, start=start, shard=shard):
            x = scale_images(images, family.pixel_range)
            try:
                runner.run_due(family.phases, x, labels, step, log)
            except NonFiniteStep as bad:
                rolled_back_to = nonfinite.handle(bad, step)  # raises Diverged when it gives up
                if rolled_back_to is not None:
                    step = rolled_back_to
                    break  # the batches again from the restored step
            step += 1
            runner.end_step()
            log.step_done(x.shape[0] * dist.world_size)
            if step % run.log.every_n_steps == 0 or step == total:
                log.flush(step, epoch, runner.learning_rates())
            log.pause()
            if dist.is_main and step % run.log.image_every_n_steps == 0:
                snapshots.write(step)
            if dist.is_main and step % run.eval.every_n_steps == 0 and step < total:
                checkpoints.consider_best(step, nonfinite.rollbacks, held_out.during_training(step))
            if step % run.checkpoint.every_n_steps == 0 or step == total:
                checkpoints.save(step, nonfinite.rollbacks)
            if stop is not None and dist.any(stop.requested, device):
                checkpoint = checkpoints.save_unless_saved(step, nonfinite.rollbacks)
                log.close()
                raise Interrupted(stop.signal_name or "a signal on another rank", step, checkpoint)
            log.resume()
            if step >= total:
                break

    if not dist.is_main:
        log.close()
        return {}
    trained = step - first_step  # the whole run's training time, from this session's pace
    training_seconds = (time.perf_counter() - started) * total / trained if trained > 0 else None
    finished = Finished(step, nonfinite.rollbacks, len(data.train), training_seconds)
    return finish(run, finished, log, snapshots, held_out, checkpoints, stop)


@dataclass(frozen=True)
class Finished:
    """Where training ended, and what the whole training took (None when this session trained
    no step): the end-of-run evaluation is kept near that time (``eval.iwae_max_images=auto``)."""

    step: int
    rollbacks: int
    train_images: int  # the training split's size
    training_seconds: float | None


def finish(
    run: RunConfig,
    finished: Finished,
    log: RunLog,
    snapshots: Snapshots,
    held_out: HeldOut,
    checkpoints: RunCheckpoints,
    stop: StopRequest | None = None,
) -> dict[str, float]:
    """After the last step (rank 0): the held-out evaluation, ``samples.png``, a last
    checkpoint, the final metrics, ``metrics.json`` and the HPARAMS row; returns what ``fit`` does.
    A signal during the final metrics stops them: ``metrics.json`` holds what finished, marked
    ``"complete": false``, and ``EvaluationInterrupted`` says how to compute the rest."""
    run_dir, step, rollbacks = checkpoints.run_dir, finished.step, finished.rollbacks
    if step % run.eval.every_n_steps == 0:  # the last point of the metrics/ curves (eval/ follows)
        checkpoints.consider_best(step, rollbacks, held_out.during_training(step, family_scalars=False))
    final = held_out.final_scalars(step)
    snapshots.save_samples(run_dir / "samples.png", step)
    checkpoint = checkpoints.save_unless_saved(step, rollbacks)
    progress = Progress(log.write, run.log.progress_bar, lambda: stop.signal_name if stop is not None else None)
    if stop is not None:
        stop.evaluating(f"the checkpoint {checkpoint} is saved", progress.interrupt)
    results = held_out.final_metrics(step, progress, finished.training_seconds)
    if results.complete:  # the HPARAMS row is the finished run's
        settings = {**hparam_values(run.resolved, held_out.data.source), **protocol_hparams(results.counts)}
        log.hparams(settings, {f"{FINAL}{k}": v for k, v in results.values.items()})
    write_metrics_json(
        run_dir / "metrics.json",
        step,
        step * run.trainer.batch_size,
        finished.train_images,
        held_out.final_images,
        final,
        results,
        held_out.data.source,
    )
    by_reason: dict[str, list[str]] = {}  # one line per reason (metrics.json has each metric's)
    for name, reason in results.skipped.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        log.write(f"metric{'s' if len(names) > 1 else ''} {', '.join(names)} not computed: {reason}")
    summary = ", ".join(f"{k}={v:.4g}" for k, v in final_values(final, results).items())  # metrics.json's names
    log.write(f"step {step}: held-out {summary}" if summary else f"step {step}: done")
    log.close()
    if results.stopped_by is not None:  # not results.complete
        rest = [name for name, reason in results.skipped.items() if reason == STOPPED]
        raise EvaluationInterrupted(results.stopped_by, step, checkpoint, list(results.seconds), rest)
    return {**{f"eval/{k}": v for k, v in final.items()}, **results.values}
