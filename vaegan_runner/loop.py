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
from torchvision.utils import save_image

from .checkpoint import checkpoint_path, restore_rng_state, rng_state, save_checkpoint
from .config import ConfigError
from .data import ImageData
from .data.pixels import to_pixels, to_unit
from .device import Precision
from .latent_view import write_latent_view
from .models import Family
from .optim import build_optimizers
from .run_config import RunConfig
from .run_log import RunLog

N_RECONSTRUCTIONS = 32  # test images shown as input | reconstruction rows
GRID_ROW = 8
INTERPOLATION_STEPS = 10


def total_steps(run: RunConfig, steps_per_epoch: int) -> int:
    limits = [run.trainer.max_steps, run.trainer.max_epochs and run.trainer.max_epochs * steps_per_epoch]
    return min(n for n in limits if n)


def fit(run: RunConfig, family: Family, data: ImageData, run_dir: Path,
        resume_state: dict | None = None) -> dict[str, float]:
    """Train ``family`` on ``data``; returns the final held-out evaluation."""
    device = family.device
    precision = Precision(run.trainer.amp, device)
    optimizers = build_optimizers(run.optimizer, family.networks())
    params = {name: [p for p in net.parameters() if p.requires_grad] for name, net in family.networks().items()}
    batch_size = run.trainer.batch_size
    steps_per_epoch = data.train.num_batches(batch_size)
    if steps_per_epoch == 0:
        raise ConfigError("trainer.batch_size", f"{batch_size} is larger than the {len(data.train)} "
                          f"training images of dataset={data.name}")
    total = total_steps(run, steps_per_epoch)

    step = 0
    if resume_state is not None:
        step = restore(resume_state, family, optimizers, precision)
    log = RunLog(run_dir, step, total, run.log.progress_bar)
    fixed_z = fixed_latent(family, run.log.n_samples, run.seed)
    recon_x = to_pixels(data.test.take(N_RECONSTRUCTIONS)[0], family.pixel_range)

    def save(at_step: int) -> None:
        state = checkpoint_state(run, family, optimizers, precision, at_step, data)
        save_checkpoint(state, checkpoint_path(run_dir, at_step), run.checkpoint.keep_last)

    grid = None
    family.train()
    while step < total:
        epoch, start = divmod(step, steps_per_epoch)
        for images, _ in data.train.batches(batch_size, epoch=epoch, seed=run.seed, start=start):
            x = to_pixels(images, family.pixel_range)
            train_step(family, x, step, optimizers, params, precision, log, run.trainer.grad_clip)
            step += 1
            log.step_done(x.shape[0])
            if step % run.log.every_n_steps == 0 or step == total:
                log.flush(step, epoch, {n: o.param_groups[0]["lr"] for n, o in optimizers.items()})
            log.pause()
            if step % run.log.image_every_n_steps == 0:
                grid = log_images(family, log, step, fixed_z, recon_x, data)
            if step % run.eval.every_n_steps == 0 and step < total:
                log.scalars("eval", evaluate(family, data, run.eval.max_images, run.eval.batch_size), step)
            if step % run.checkpoint.every_n_steps == 0 or step == total:
                save(step)
            log.resume()
            if step >= total:
                break

    final = evaluate(family, data, run.eval.final_max_images, run.eval.batch_size)
    log.scalars("eval", final, step)
    if grid is None or step % run.log.image_every_n_steps:
        grid = log_images(family, log, step, fixed_z, recon_x, data)
    save_image(grid, run_dir / "samples.png")
    if not list((run_dir / "checkpoints").glob(f"step_{step:08d}.pt")):
        save(step)
    (run_dir / "metrics.json").write_text(json.dumps(
        {"step": step, "images_seen": step * batch_size, "eval_images": eval_count(data, run.eval.final_max_images),
         **{f"eval/{k}" if "/" not in k else k: v for k, v in final.items()}}, indent=2) + "\n")
    summary = ", ".join(f"{k}={v:.4g}" for k, v in final.items())
    log.write(f"step {step}: held-out {summary}" if summary else f"step {step}: done")
    log.close()
    return final


def train_step(family: Family, x: torch.Tensor, step: int, optimizers, params, precision: Precision,
               log: RunLog, grad_clip: float | None) -> None:
    """Run every phase due at ``step`` on batch ``x``."""
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
        for net in phase.networks:
            if grad_clip is not None:
                precision.scaler.unscale_(optimizers[net])
                torch.nn.utils.clip_grad_norm_(params[net], grad_clip)
            precision.scaler.step(optimizers[net])
        precision.scaler.update()
        family.after_phase(phase.name, step)
        log.add(logs)


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
        n = recon_x.shape[0] // GRID_ROW * GRID_ROW
        rows = torch.stack([recon_x[:n].view(-1, GRID_ROW, *recon_x.shape[1:]),
                            recon[:n].view(-1, GRID_ROW, *recon.shape[1:])], dim=1)
        log.images("reconstructions", to_unit(rows.flatten(0, 2), family.pixel_range), step, nrow=GRID_ROW)
        log.images("interpolations", to_unit(interpolate(family, codes), family.pixel_range), step,
                   nrow=INTERPOLATION_STEPS)
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


def interpolate(family: Family, codes: torch.Tensor) -> torch.Tensor:
    """One row per pair of held-out images: decodings along the line between their codes."""
    pairs = min(GRID_ROW, codes.shape[0] // 2)
    start, end = codes[:pairs], codes[pairs: 2 * pairs]
    weights = torch.linspace(0, 1, INTERPOLATION_STEPS, device=codes.device).view(1, -1, 1)
    path = start[:, None] + weights * (end - start)[:, None]  # [pairs, steps, latent]
    return family.generate(path.flatten(0, 1))


def checkpoint_state(run: RunConfig, family: Family, optimizers, precision: Precision, step: int,
                     data: ImageData) -> dict:
    return {
        "family": family.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "scaler": precision.scaler.state_dict(),
        "step": step,
        "rng": rng_state(),
        "config": run.resolved,
        "meta": {"model": run.model.name, "dataset": data.name, "channels": data.channels,
                 "image_size": data.image_size, "latent_dim": family.latent_dim},
    }


def restore(state: dict, family: Family, optimizers, precision: Precision) -> int:
    """Load a checkpoint's states into the live objects; returns the step to continue from."""
    family.load_state_dict(state["family"])
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    precision.scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    return int(state["step"])

