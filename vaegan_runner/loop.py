"""The training loop. It knows phases, networks and optimizers, never a family by name.

Read top to bottom: set up (optimizers, precision, resume), then for each batch run the
family's phases that are due, then log, evaluate and checkpoint on their schedules; at the
end evaluate on the held-out split, write ``samples.png``, ``metrics.json`` and a last
checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import (CHECKPOINT_DIR, checkpoint_path, list_checkpoints, load_checkpoint, restore_rng_state,
                         rng_state, save_checkpoint)
from .config import ConfigError
from .data import ImageData
from .data.pixels import to_pixels, to_unit
from .device import Precision
from .distributed import Distributed
from .latent_paths import interpolate
from .latent_view import write_latent_view
from .metrics.collapse import CollapseWatch
from .metrics.context import MetricResources, MetricResults, evaluate_metrics
from .models import Family
from .optim import build_optimizers
from .run_config import RunConfig
from .run_log import RunLog, tag_of
from .stopping import Diverged, Interrupted, StopRequest

N_RECONSTRUCTIONS = 32  # test images shown as input | reconstruction rows
GRID_ROW = 8
INTERPOLATION_STEPS = 10


def total_steps(run: RunConfig, steps_per_epoch: int) -> int:
    limits = [run.trainer.max_steps, run.trainer.max_epochs and run.trainer.max_epochs * steps_per_epoch]
    return min(n for n in limits if n)


def fit(run: RunConfig, family: Family, data: ImageData, run_dir: Path, resume_state: dict | None = None,
        dist: Distributed | None = None, stop: StopRequest | None = None) -> dict[str, float]:
    """Train ``family`` on ``data``; returns the final held-out evaluation (``eval/<name>``)
    and the final metrics (by value name). Under ``torchrun`` every rank calls this; rank 0
    alone logs, evaluates and writes files, the others return an empty dict."""
    dist = dist or Distributed()
    device = family.device
    precision = Precision(run.trainer.amp, device)
    optimizers = build_optimizers(run.optimizer, family.networks())
    params = {name: [p for p in net.parameters() if p.requires_grad] for name, net in family.networks().items()}
    batch_size = run.trainer.batch_size
    shard = dist.shard(batch_size)
    steps_per_epoch = data.train.num_batches(batch_size)
    if steps_per_epoch == 0:
        raise ConfigError("trainer.batch_size", f"{batch_size} is larger than the {len(data.train)} "
                          f"training images of dataset={data.name}")
    total = total_steps(run, steps_per_epoch)

    step, rollbacks = 0, 0
    if resume_state is not None:
        step, rollbacks = restore(resume_state, family, optimizers, precision)
        if step >= total and (run_dir / "metrics.json").is_file():
            return finished_results(run_dir / "metrics.json")
        if dist.rank:  # rank 0 continues the saved RNG stream; the others get their own
            torch.manual_seed(run.seed + 1_000_003 * dist.rank + step)
    log = RunLog(run_dir if dist.is_main else None, step, total, run.log.progress_bar, reduce=dist.mean)
    fixed_z = fixed_latent(family, run.log.n_samples, run.seed)
    recon_x = to_pixels(data.test.take(N_RECONSTRUCTIONS)[0], family.pixel_range)

    def save(at_step: int) -> Path | None:
        if not dist.is_main:
            return None
        state = checkpoint_state(run, family, optimizers, precision, at_step, data, rollbacks)
        path = checkpoint_path(run_dir, at_step)
        save_checkpoint(state, path, run.checkpoint.keep_last)
        return path

    resources = MetricResources(data, run.eval, device, log.write)
    collapse = CollapseWatch(data.num_classes)

    def evaluate_during_training(at_step: int, family_scalars: bool = True) -> None:
        if family_scalars:
            log.scalars("eval", evaluate(family, data, run.eval.max_images, run.eval.batch_size), at_step)
        results = evaluate_metrics(run.eval.metrics, family, resources, n_samples=run.eval.n_samples,
                                   max_images=run.eval.max_images, inception_on_cpu=run.eval.inception_on_cpu)
        log.scalars("metrics", results.values, at_step)
        warning = collapse.check(results.values)
        if warning:
            log.warn(warning, at_step)

    if run.trainer.on_nonfinite == "rollback" and not list_checkpoints(run_dir / CHECKPOINT_DIR):
        save(step)  # something to roll back to before the first scheduled checkpoint
    skipped_in_a_row = 0
    grid = None
    family.train()
    while step < total:
        epoch, start = divmod(step, steps_per_epoch)
        for images, _ in data.train.batches(batch_size, epoch=epoch, seed=run.seed, start=start, shard=shard):
            x = to_pixels(images, family.pixel_range)
            try:
                train_step(family, x, step, optimizers, params, precision, log, run.trainer.grad_clip, dist)
                skipped_in_a_row = 0
            except NonFiniteStep as bad:
                policy = run.trainer.on_nonfinite
                last_good = last_checkpoint(run_dir)
                if policy == "skip" and skipped_in_a_row < run.trainer.max_skips:
                    skipped_in_a_row += 1
                    for optimizer in optimizers.values():
                        optimizer.zero_grad(set_to_none=True)
                    log.warn(f"{bad}; update skipped (trainer.on_nonfinite=skip)", step + 1)
                elif policy == "rollback" and rollbacks < run.trainer.max_rollbacks and last_good is not None:
                    rollbacks += 1
                    step = roll_back(last_good, family, optimizers, precision, run.trainer.rollback_lr_factor)
                    log.restart(step)
                    log.warn(f"{bad}; rolled back to {last_good.name} with the learning rates times "
                             f"{run.trainer.rollback_lr_factor} (rollback {rollbacks} of "
                             f"{run.trainer.max_rollbacks})", step)
                    break  # the batches again from the restored step
                else:
                    log.close()
                    raise Diverged(diverged_message(bad, policy, run.trainer, last_good)) from None
            step += 1
            log.step_done(x.shape[0] * dist.world_size)
            if step % run.log.every_n_steps == 0 or step == total:
                log.flush(step, epoch, {n: o.param_groups[0]["lr"] for n, o in optimizers.items()})
            log.pause()
            if dist.is_main and step % run.log.image_every_n_steps == 0:
                grid = log_images(family, log, step, fixed_z, recon_x, data)
            if dist.is_main and step % run.eval.every_n_steps == 0 and step < total:
                evaluate_during_training(step)
            if step % run.checkpoint.every_n_steps == 0 or step == total:
                save(step)
            if stop is not None and dist.any(stop.requested, device):
                checkpoint = checkpoint_path(run_dir, step)
                if not checkpoint.is_file():
                    save(step)
                log.close()
                raise Interrupted(stop.signal_name or "a signal on another rank", step, checkpoint)
            log.resume()
            if step >= total:
                break

    if not dist.is_main:
        log.close()
        return {}
    if step % run.eval.every_n_steps == 0:  # the last point of the metrics/ curves (eval/ follows)
        evaluate_during_training(step, family_scalars=False)
    final = evaluate(family, data, run.eval.final_max_images, run.eval.batch_size)
    log.scalars("eval", final, step)
    if grid is None or step % run.log.image_every_n_steps:
        grid = log_images(family, log, step, fixed_z, recon_x, data)
    from torchvision.utils import save_image  # torchvision costs ~1.5 s of startup: import it when used

    save_image(grid, run_dir / "samples.png")
    if not checkpoint_path(run_dir, step).is_file():
        save(step)
    results = evaluate_metrics(run.eval.final_metrics, family, resources, n_samples=run.eval.final_n_samples,
                               max_images=run.eval.final_max_images, inception_on_cpu=run.eval.inception_on_cpu)
    log.scalars("final", results.values, step)
    log.hparams(hparam_values(run.resolved), {f"final/{k}": v for k, v in results.values.items()})
    write_metrics_json(run_dir / "metrics.json", step, step * batch_size,
                       eval_count(data, run.eval.final_max_images), final, results)
    for name, reason in results.skipped.items():
        log.write(f"metric {name} not computed: {reason}")
    summary = ", ".join(f"{k}={v:.4g}" for k, v in {**final, **results.values}.items())
    log.write(f"step {step}: held-out {summary}" if summary else f"step {step}: done")
    log.close()
    return {**{f"eval/{k}": v for k, v in final.items()}, **results.values}


def finished_results(path: Path) -> dict[str, float]:
    """What ``fit`` returned when the run finished: resuming a finished run (``resume=auto``
    over a sweep that was interrupted part-way) does not train or evaluate it again."""
    saved = json.loads(path.read_text())
    return {**{k: v for k, v in saved.items() if k.startswith("eval/")},
            **{k.removeprefix("metrics/"): v for k, v in saved.items() if k.startswith("metrics/")}}


def last_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(Path(run_dir) / CHECKPOINT_DIR)
    return found[-1] if found else None


def diverged_message(bad: "NonFiniteStep", policy: str, trainer, last_good: Path | None) -> str:
    reason = {"stop": "trainer.on_nonfinite=stop",
              "skip": f"{trainer.max_skips} steps in a row were skipped (trainer.max_skips)",
              "rollback": f"{trainer.max_rollbacks} rollbacks used (trainer.max_rollbacks)"
                          if last_good is not None else "no checkpoint to roll back to"}[policy]
    kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
    return (f"{bad}; stopping: {reason}. Nothing non-finite reached the weights; {kept}. Lower "
            f"optimizer.lr, set trainer.grad_clip, or try trainer.on_nonfinite=rollback, then continue "
            f"with resume=auto")


def roll_back(checkpoint: Path, family: Family, optimizers, precision: Precision, lr_factor: float) -> int:
    """Load ``checkpoint`` into the live objects and scale every learning rate by ``lr_factor``."""
    step, _ = restore(load_checkpoint(checkpoint), family, optimizers, precision)
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] *= lr_factor
    return step


def write_metrics_json(path: Path, step: int, images_seen: int, eval_images: int, final: dict[str, float],
                       results: MetricResults) -> None:
    """The run's final numbers: family scalars (``eval/``), metrics (``metrics/``), and for each
    metric what it was computed on (FID depends on the sample count)."""
    path.write_text(json.dumps({
        "step": step, "images_seen": images_seen, "eval_images": eval_images,
        **{f"eval/{k}" if "/" not in k else k: v for k, v in final.items()},
        **{f"metrics/{k}": v for k, v in results.values.items()},
        "metric_counts": results.counts, "metric_seconds": {k: round(v, 2) for k, v in results.seconds.items()},
        "metrics_skipped": results.skipped,
    }, indent=2) + "\n")


HPARAM_GROUPS = ("model", "dataset", "optimizer", "trainer")


def hparam_values(resolved: dict) -> dict[str, float | int | str | bool]:
    """The run's settings as flat ``group.key`` scalars for TensorBoard's HPARAMS tab."""
    flat: dict[str, float | int | str | bool] = {"seed": resolved["seed"]}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}", value)
        elif prefix not in ("dataset.root", "dataset.cache_dir"):
            flat[prefix] = node if isinstance(node, (int, float, str, bool)) else str(node)

    for group in HPARAM_GROUPS:
        walk(group, resolved[group])
    return flat


class NonFiniteStep(Exception):
    """A loss or gradient of this step is inf or NaN; no optimizer has stepped on it."""

    def __init__(self, step: int, phase: str, names: list[str]):
        super().__init__(f"non-finite {', '.join(names)} at step {step + 1} (phase {phase})")


def train_step(family: Family, x: torch.Tensor, step: int, optimizers, params, precision: Precision,
               log: RunLog, grad_clip: float | None, dist: Distributed | None = None) -> None:
    """Run every phase due at ``step`` on batch ``x``.

    Before any optimizer steps, the phase's losses and gradient norms are checked (one host
    sync per phase); a non-finite one raises ``NonFiniteStep``. With an fp16 loss scaler the
    gradients are left to the scaler, which skips steps with inf gradients by design.
    """
    for phase in family.phases:
        if step % phase.interval:
            continue
        with precision.autocast():
            losses, logs = family.phase_losses(phase.name, x, step)
        if set(losses) != set(phase.networks):
            raise RuntimeError(f"{type(family).__name__} phase {phase.name!r} returned losses for "
                               f"{sorted(losses)}, but updates {sorted(phase.networks)}")
        for net in phase.networks:
            optimizers[net].zero_grad(set_to_none=True)
        backward_split(losses, params, precision.scaler)
        checks = {tag_of(name, "loss"): value for name, value in logs.items()}
        checks.update({f"{net} loss": loss for net, loss in losses.items()})
        for net in phase.networks:
            if dist is not None:
                dist.average_gradients(params[net])
            if grad_clip is not None:
                precision.scaler.unscale_(optimizers[net])
                checks[f"{net} gradient"] = torch.nn.utils.clip_grad_norm_(params[net], grad_clip)
            elif not precision.scaler.is_enabled():
                checks[f"{net} gradient"] = torch.nn.utils.get_total_norm(
                    [p.grad for p in params[net] if p.grad is not None])
        bad = nonfinite(checks, dist)
        if bad:
            if grad_clip is not None and precision.scaler.is_enabled():
                precision.scaler.update()  # closes the unscale_ calls above (and lowers the scale)
            raise NonFiniteStep(step, phase.name, bad)
        for net in phase.networks:
            precision.scaler.step(optimizers[net])
        precision.scaler.update()
        family.after_phase(phase.name, step)
        log.add(logs)


def nonfinite(values: dict[str, torch.Tensor], dist: Distributed | None) -> list[str]:
    """The names of the values with an inf or NaN (every rank agrees)."""
    finite = torch.stack([torch.isfinite(v.detach().float()).all() for v in values.values()])
    if dist is not None and dist.enabled:
        finite = dist.mean(finite.float()) == 1
    return [name for name, ok in zip(values, finite.tolist()) if not ok]


def backward_split(losses: dict[str, torch.Tensor], params: dict[str, list], scaler) -> None:
    """Back-propagate each network's loss into that network's parameters only.

    Networks that share one loss tensor (a VAE's encoder and decoder) share one backward
    pass; ``inputs=`` keeps every other network's ``.grad`` untouched.
    """
    groups: dict[int, tuple[torch.Tensor, list]] = {}
    for net, loss in losses.items():
        groups.setdefault(id(loss), (loss, []))[1].extend(params[net])
    passes = list(groups.values())
    for i, (loss, inputs) in enumerate(passes):
        scaler.scale(loss).backward(inputs=inputs, retain_graph=i < len(passes) - 1)


def fixed_latent(family: Family, n: int, seed: int) -> torch.Tensor:
    """The same latent batch for every sample grid of a run (and of runs with the same seed)."""
    devices = [family.device] if family.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return family.sample_latent(n)


def eval_count(data: ImageData, max_images: int | None) -> int:
    return len(data.test) if max_images is None else min(max_images, len(data.test))


@torch.no_grad()
def evaluate(family: Family, data: ImageData, max_images: int | None, batch_size: int) -> dict[str, float]:
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
        for images, _ in data.test.batches(batch_size, epoch=0, seed=0, shuffle=False, drop_last=False):
            images = images[: limit - seen]
            for name, value in family.evaluate(to_pixels(images, family.pixel_range)).items():
                sums[name] = sums.get(name, 0) + value.float() * images.shape[0]
            seen += images.shape[0]
            if seen >= limit:
                break
    family.train()
    if not sums:
        return {}
    names = list(sums)
    return dict(zip(names, (torch.stack([sums[n] for n in names]) / seen).tolist()))


@torch.no_grad()
def log_images(family: Family, log: RunLog, step: int, fixed_z: torch.Tensor,
               recon_x: torch.Tensor, data: ImageData) -> torch.Tensor:
    """Sample grid from the fixed latent batch; for families with an encoder, rows of
    held-out inputs over their reconstructions, interpolations between encodings, and the
    held-out codes against the prior (``log_latent_view``)."""
    family.eval()
    grid = log.images("samples", to_unit(family.generate(fixed_z), family.pixel_range), step)
    codes = family.encode(recon_x)
    if codes is not None:
        recon = family.generate(codes)
        row = min(GRID_ROW, recon_x.shape[0])  # a held-out split smaller than a row: one shorter row
        n = recon_x.shape[0] // row * row
        rows = torch.stack([recon_x[:n].view(-1, row, *recon_x.shape[1:]),
                            recon[:n].view(-1, row, *recon.shape[1:])], dim=1)
        log.images("reconstructions", to_unit(rows.flatten(0, 2), family.pixel_range), step, nrow=row)
        pairs = min(GRID_ROW, codes.shape[0] // 2)
        if pairs:
            path = interpolate(family, codes[:pairs], codes[pairs: 2 * pairs], INTERPOLATION_STEPS)
            log.images("interpolations", to_unit(path, family.pixel_range), step, nrow=INTERPOLATION_STEPS)
        log_latent_view(family, log, step, data)
    family.train()
    return grid


@torch.no_grad()
def log_latent_view(family: Family, log: RunLog, step: int, data: ImageData, n: int = 500,
                    chunk: int = 100) -> None:
    """The codes of ``n`` held-out images, coloured by label, against as many prior draws
    (a scatter for 2-d codes, else per-dimension histograms; see ``latent_view.py``).
    The prior draws use their own generator, so the training run's randomness is untouched."""
    images, labels = data.test.take(n)
    x = to_pixels(images, family.pixel_range)
    codes = torch.cat([family.encode(part) for part in x.split(chunk)])
    prior = family.sample_latent(codes.shape[0], torch.Generator(family.device).manual_seed(0))
    write_latent_view(log.writer, codes, labels, prior, step)


def checkpoint_state(run: RunConfig, family: Family, optimizers, precision: Precision, step: int,
                     data: ImageData, rollbacks: int = 0) -> dict:
    return {
        "rollbacks": rollbacks,
        "family": family.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "scaler": precision.scaler.state_dict(),
        "step": step,
        "rng": rng_state(),
        "config": run.resolved,
        "meta": {"model": run.model.name, "dataset": data.name, "channels": data.channels,
                 "image_size": data.image_size, "latent_dim": family.latent_dim},
    }


def restore(state: dict, family: Family, optimizers, precision: Precision) -> tuple[int, int]:
    """Load a checkpoint's states into the live objects; returns the step to continue from and
    the rollbacks used so far."""
    family.load_state_dict(state["family"])
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    precision.scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    return int(state["step"]), int(state.get("rollbacks", 0))

