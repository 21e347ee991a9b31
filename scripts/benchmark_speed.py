#!/usr/bin/env python
"""Training speed of the runner against a plain hand-written PyTorch loop, and the runner's startup.

    flock /tmp/vaegan-bench.lock python scripts/benchmark_speed.py --models vae gan --sizes 28 32
    flock /tmp/vaegan-bench.lock python scripts/benchmark_speed.py --sections startup data
    flock /tmp/vaegan-bench.lock python scripts/benchmark_speed.py --sections options
    flock /tmp/vaegan-bench.lock python scripts/benchmark_speed.py --sections families --threads 1
    flock /tmp/vaegan-bench.lock python scripts/benchmark_speed.py --dataset cifar10 --sizes 32 64 \
        --channels-last false true

Sections (``--sections``, default ``throughput``):

* ``throughput``: images/s of both loops in one process. The runner side is the runner's hot
  path as ``loop.fit`` drives it: ``data.train.batches``, ``to_pixels``, ``PhaseRunner.run_due``,
  ``RunLog.step_done``/``pause``/``resume`` every step and ``RunLog.flush`` (TensorBoard
  scalars) every ``log.every_n_steps``; evaluation, image grids and checkpoints, which fit
  runs on their own schedules and leaves out of ``perf/images_per_sec``, are left out here
  too. The family is made by ``train.build_family`` (as ``vaegan-train`` makes it, with
  ``trainer.channels_last`` applied) from the validated, composed config
  (``model.ema.enabled=false`` for the GAN, as in ``compare_plain_loop.py``). The plain side
  is what a user would write: the same networks (``nets.build_encoder``/``build_decoder``,
  loaded with the family's initial weights, in the default memory layout), the same losses and
  batch size (the VAE's Bernoulli likelihood, or on CIFAR-10 its default discretised logistic,
  written out in ``plain_discretized_logistic_nll``), Adam with the config's settings,
  ``torch.randperm`` batches (``compare_plain_loop.batches``). The plain
  GAN step does the runner's work: D on a no-grad fake, then G on a fresh fake (PyTorch's
  DCGAN example reuses the D step's fake instead, one generator forward less per batch). Its
  G step calls a bare ``backward()``, which also computes D's weight gradients; the runner's
  ``backward(inputs=...)`` skips them, so its GAN can beat the plain loop.
  ``--channels-last false true`` times two runner sides, ``trainer.channels_last`` off and on,
  from the same initial weights (the plain loop's networks keep the default layout). After
  warm-up, chunks of ``--steps-per-chunk`` steps of every side in rotating order (runner,
  plain, plain, runner, ... with one runner side, so that a slow drift of the machine favours
  none); the table gives each side's median images/s and the median of the per-repeat ratios.
* ``options``: the runner's images/s with the speed options ``trainer.channels_last`` and
  ``trainer.compile``, each alone and both, against neither (``--variants`` picks some; each
  variant sets both keys, whatever their defaults). Each variant's family is made by
  ``train.build_family`` from the default config (the GAN keeps its EMA generator), from the same
  seed, and driven by the same steps as ``throughput``'s runner side. The loop does not convert
  the input batches (``to_pixels`` gives NCHW tensors), so neither does this: only the weights
  are channels_last. The first step of each variant is timed on its own (for ``compile`` it
  holds the compilation of every graph a training step needs, cold: Inductor's cache is a fresh
  folder); then ``--warmup`` steps, then chunks of ``--steps-per-chunk`` steps of the four
  variants in rotating order. The table gives each variant's median images/s, the median of the
  per-repeat ratios to ``neither``, and the compile seconds: the first step's time less that of
  the same variant without compile.
* ``families``: each family's training speed with its own default config (``--families``,
  default all five, at 28x28: MNIST when ``VAEGAN_DATA_DIR`` holds it; an entry
  ``FAMILY:KEY=VALUE[:KEY=VALUE...]`` adds overrides, so that ``vae:model.prior=gaussian vae``
  times one family two ways; with ``--dataset cifar10``, at each of ``--sizes``), the families
  made as ``vaegan-train`` makes them and driven by ``throughput``'s runner side. Chunks of
  ``--steps-per-chunk`` steps of every family in rotating order, so that all of them see the
  same machine; the table gives each family's median images/s, the seconds an epoch of the
  dataset's training split takes at that rate (training only, as ``perf/images_per_sec``
  counts it), the median of the per-repeat ratios of its time per image to the (first) GAN
  entry's, and for a family's second and later entries the median of the per-repeat ratios of
  their images/s to its first entry's (``vae:trainer.channels_last=false
  vae:trainer.channels_last=true``: what the option gains).
* ``startup``: wall time of whole ``python -m vaegan_runner.train model=vae ...
  trainer.max_steps=1`` processes (imports, config, data, one step, the end-of-run evaluation,
  image grid and checkpoint, made as cheap as the config allows), with the decoded-dataset
  cache off (``dataset.cache_dir=null``) and on (a warm cache in a temporary folder).
* ``data``: ``load_data`` seconds for MNIST, Fashion-MNIST (when ``VAEGAN_DATA_DIR`` holds
  them) and shapes, decoding every time against reading the decoded-dataset cache.

Data (``--dataset``): ``auto`` (the default): at size 28 MNIST when ``VAEGAN_DATA_DIR`` holds
it, else shapes at 28x28x1; other sizes (``--sizes``, 28 and 32 by default) shapes at
SxSx3 (32: CIFAR-shaped). ``cifar10``: CIFAR-10 from the config's root (``VAEGAN_DATA_DIR``)
resized to each size, read through the config's decoded-dataset cache (``VAEGAN_CACHE_DIR``).
``--clock cpu`` (with ``--threads 1``) times the throughput, options and families sections in
the process's CPU time instead of the wall clock: on a machine other jobs share it leaves out
the time they hold the cores, so the img/s are what the steps cost, not what the load left.
``--set KEY=VALUE ...`` overrides the config of the runner side of the throughput, options and
families sections (``trainer.channels_last=true``). Prints markdown tables and the command
line; ``--json`` also writes every measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from compare_plain_loop import batches

from vaegan_runner.data import load_data, to_pixels
from vaegan_runner.models import family_names
from vaegan_runner.models.nets import build_decoder, build_encoder
from vaegan_runner.training.phase_runner import PhaseRunner
from vaegan_runner.training.run_log import RunLog

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Config keys that make the end of a 1-step VAE run cheap, used where the config tree has them:
# a small held-out evaluation and sample grid, and of the sample metrics only the reconstruction
# error (no domain classifier to train, no Inception network).
CHEAP_END = {
    "eval.final_max_images": 100,
    "eval.metrics": [],
    "eval.final_metrics": ["recon_mse"],
    "eval.optimized_metric": "recon_mse",
    "eval.final_n_samples": 100,
    "eval.n_samples": 100,
    "log.n_samples": 16,
}

Steps = Iterator[int]  # yields the images of each training step as it finishes


# ============================================================================ config and data
def mnist_root() -> Path | None:
    root = os.environ.get("VAEGAN_DATA_DIR")
    if root and all((Path(root) / "MNIST" / "raw" / f"{name}.gz").is_file() for name in MNIST_FILES):
        return Path(root)
    return None


def dataset_overrides(size: int, dataset: str = "auto") -> tuple[list[str], str]:
    """The dataset overrides for an image size, and a label for the table. ``auto``: MNIST at 28
    when ``VAEGAN_DATA_DIR`` holds it, else shapes (1 channel at 28, 3 at other sizes);
    ``cifar10``: CIFAR-10 from the config's root (``VAEGAN_DATA_DIR``) resized to ``size``."""
    if dataset == "cifar10":
        return ["dataset=cifar10", f"dataset.image_size={size}", "dataset.download=false"], f"CIFAR-10 {size}x{size}x3"
    root = mnist_root()
    if size == 28 and root is not None:
        return ["dataset=mnist", f"dataset.root={root}", "dataset.download=false"], "MNIST 28x28x1"
    channels = 1 if size == 28 else 3
    return (
        ["dataset=shapes", f"dataset.image_size={size}", f"dataset.channels={channels}"],
        f"shapes {size}x{size}x{channels}",
    )


def scratch_cache(dataset: str, scratch: Path) -> list[str]:
    """Decoded datasets cached in the scratch folder, except real colour data: CIFAR-10 takes a
    minute to decode, so it uses the config's cache (``VAEGAN_CACHE_DIR``), as a run does."""
    return [] if dataset == "cifar10" else [f"dataset.cache_dir={scratch / 'cache'}"]


def compose(overrides: list[str]):
    """The composed Hydra config, as ``vaegan-train`` would see it (not yet validated)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from vaegan_runner.train import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def validated(overrides: list[str]):
    from vaegan_runner.run_schema import validate

    return validate(compose(overrides))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ============================================================================ the two loops
def runner_steps(run, family, data, log_dir: Path) -> Steps:
    """``loop.fit``'s training loop with evaluation, images and checkpoints left out."""
    runner = PhaseRunner.for_run(run, family, total_steps=10**9)
    batch_size = run.trainer.batch_size
    steps_per_epoch = data.train.num_batches(batch_size)
    log = RunLog(log_dir, 0, 10**9, run.log.progress_bar)
    step = 0
    family.train()
    try:
        while True:
            epoch = step // steps_per_epoch
            for images, labels in data.train.batches(batch_size, epoch=epoch, seed=run.seed):
                x = to_pixels(images, family.pixel_range)
                runner.run_due(family.phases, x, labels, step, log)
                step += 1
                runner.end_step()
                log.step_done(x.shape[0])
                if step % run.log.every_n_steps == 0:
                    log.flush(step, epoch, runner.learning_rates())
                log.pause()
                log.resume()
                yield x.shape[0]
    finally:  # the generator's close()
        log.close()


def adam(run, params) -> torch.optim.Adam:
    o = run.optimizer
    return torch.optim.Adam(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def plain_discretized_logistic_nll(logits: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log P(x) per image of 8-bit pixels x (k / 255) under a logistic (mean sigmoid(logits),
    scale exp(log_scale)) per pixel, each pixel's bin 1/255 wide, the edge bins taking the tails."""
    half_bin = 0.5 / 255
    mean, inv_scale = torch.sigmoid(logits), torch.exp(-log_scale)
    upper, lower = (x - mean + half_bin) * inv_scale, (x - mean - half_bin) * inv_scale
    # log(sigmoid(upper) - sigmoid(lower)), in a form that stays finite for narrow logistics
    inside = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(lower - upper))
    log_p = torch.where(x < half_bin, F.logsigmoid(upper), torch.where(x > 1 - half_bin, F.logsigmoid(-lower), inside))
    return -log_p.flatten(1).sum(1)


def plain_vae_steps(run, family, images: torch.Tensor) -> Steps:
    """A hand-written VAE loop: Bernoulli decoder (or, on colour data, one logistic per pixel
    discretised to the 256 levels, with a learned scale per channel or, with
    ``model.logistic_scale=pixel``, a scale per pixel decoded beside the means), analytic KL, one
    Adam for both networks."""
    m, size, channels = run.model, family.image_size, family.channels
    pixel_scales = m.likelihood == "discretized_logistic" and m.logistic_scale == "pixel"
    enc = build_encoder(m.net, channels, size, 2 * m.latent_dim).to(family.device)
    dec = build_decoder(m.net, channels * (2 if pixel_scales else 1), size, m.latent_dim).to(family.device)
    enc.load_state_dict(family.encoder.state_dict())
    decoder_state = family.decoder.state_dict()
    log_scale = decoder_state.pop("log_scale", None)  # discretized_logistic: the family's scale, [C, 1, 1]
    dec.load_state_dict(decoder_state)
    trained = [*enc.parameters(), *dec.parameters()]
    if log_scale is not None:
        log_scale = torch.nn.Parameter(log_scale.clone())
        trained.append(log_scale)
    opt = adam(run, trained)

    def nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if pixel_scales:  # the means' logits, then log scales around 0.1, at least e^-7
            means, raw = logits[:, :channels], logits[:, channels:]
            return plain_discretized_logistic_nll(means, (raw + math.log(0.1)).clamp(min=-7.0), x)
        if log_scale is None:
            return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        return plain_discretized_logistic_nll(logits, log_scale, x)

    def steps() -> Steps:
        while True:
            for batch in batches(images, run.trainer.batch_size):
                x = batch.float() / 255
                mu, logvar = enc(x).chunk(2, dim=1)
                logvar = logvar.clamp(-30.0, 20.0)
                z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
                loss = (nll(dec(z), x) + 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                yield x.shape[0]

    return steps()


def plain_gan_steps(run, family, images: torch.Tensor) -> Steps:
    """A hand-written non-saturating GAN loop: a D step on a no-grad fake, then a G step."""
    m, size, device = run.model, family.image_size, family.device
    G = build_decoder(m.net, family.channels, size, m.latent_dim).to(device)
    D = build_encoder(m.net, family.channels, size, 1, m.discriminator.norm, m.discriminator.spectral_norm).to(device)
    G.load_state_dict(family.generator.state_dict())
    D.load_state_dict(family.discriminator.state_dict())
    opt_g, opt_d = adam(run, G.parameters()), adam(run, D.parameters())

    def steps() -> Steps:
        while True:
            for batch in batches(images, run.trainer.batch_size):
                real = batch.float() / 127.5 - 1
                with torch.no_grad():
                    fake = torch.tanh(G(torch.randn(real.shape[0], m.latent_dim, device=device)))
                d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                fake = torch.tanh(G(torch.randn(real.shape[0], m.latent_dim, device=device)))
                g_loss = F.softplus(-D(fake)).mean()
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                yield real.shape[0]

    return steps()


PLAIN = {"vae": plain_vae_steps, "gan": plain_gan_steps}
PLAIN_LIKELIHOODS = ("bernoulli", "discretized_logistic")  # those plain_vae_steps writes out
FAMILY_NAMES = ("vae", "gan", "vaegan", "aae", "bigan")
MODEL_OVERRIDES = {"vae": ["model=vae", "model.prior=gaussian"], "gan": ["model=gan", "model.ema.enabled=false"]}


def check_plain_matches(run) -> None:
    """The plain loops hard-code what the config must say."""
    m, o, t = run.model, run.optimizer, run.trainer
    wanted = {
        "optimizer.name": (o.name, "adam"),
        "optimizer overrides": (o.overridden_networks(), []),
        "trainer.grad_clip": (t.grad_clip, None),
        "trainer.amp": (t.amp, "off"),
        "dataset.binarize": (run.dataset.binarize, False),
    }
    if m.name == "vae":
        wanted.update(
            {
                "model.likelihood in PLAIN_LIKELIHOODS": (m.likelihood in PLAIN_LIKELIHOODS, True),
                "model.pixel_range": (m.pixel_range, "unit"),
                "model.beta": (m.beta, 1.0),
                "model.kl_warmup_steps": (m.kl_warmup_steps, 0),
                "model.prior": (m.prior, "gaussian"),
            }
        )
    else:
        wanted.update(
            {
                "model.loss": (m.loss, "nonsaturating"),
                "model.n_critic": (m.n_critic, 1),
                "model.pixel_range": (m.pixel_range, "symmetric"),
                "model.ema.enabled": (m.ema.enabled, False),
            }
        )
    bad = {k: v for k, v in wanted.items() if v[0] != v[1]}
    if bad:
        sys.exit(f"benchmark_speed: the plain {m.name} loop does not cover this config: {bad} (config, plain)")


# ============================================================================ throughput
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}  # --clock
clock = CLOCKS["wall"]


def images_per_sec(steps: Steps, n: int, device: torch.device) -> float:
    """Images per second of ``n`` steps, on ``clock``: wall time, or (``--clock cpu``) the
    process's CPU time, which on a shared machine leaves out the time other processes hold the
    cores (with one thread it is the time the steps computed)."""
    sync(device)
    start = clock()
    images = sum(next(steps) for _ in range(n))
    sync(device)
    return images / (clock() - start)


def rotating_chunks(sides: dict[str, Steps], args, device: torch.device) -> dict[str, list[float]]:
    """Images/s of ``args.repeats`` chunks of ``args.steps_per_chunk`` steps of every side, the
    order rotating each repeat (so that a slow drift of the machine favours none); closes the sides."""
    names = list(sides)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(images_per_sec(sides[name], args.steps_per_chunk, device))
    for steps in sides.values():
        steps.close()
    return rates


def throughput(model: str, size: int, args, scratch: Path) -> list[dict]:
    """The plain loop against the runner with each of ``args.channels_last`` (``config``: the
    composed config's value), all sides in rotating order; one row per runner side."""
    from vaegan_runner.train import build_family
    from vaegan_runner.training.distributed import Distributed

    data_overrides, data_label = dataset_overrides(size, args.dataset)
    base = [
        *MODEL_OVERRIDES[model],
        *data_overrides,
        f"device={args.device}",
        "log.progress_bar=false",
        *scratch_cache(args.dataset, scratch),
        *args.overrides,
    ]
    device = torch.device(args.device)
    sides: dict[str, Steps] = {}
    runs, plain, data = {}, None, None
    for layout in args.channels_last:
        run = validated([*base, *([] if layout == "config" else [f"trainer.channels_last={layout}"])])
        check_plain_matches(run)
        data = data or load_data(run.dataset, device)
        torch.manual_seed(run.seed)  # the same initial weights on every side
        family = build_family(run, data, device, Distributed())  # as vaegan-train makes it (trainer.channels_last)
        plain = plain or PLAIN[model](run, family, data.train.images)  # loaded with the family's weights
        name = f"runner channels_last={run.trainer.channels_last}"
        sides[name], runs[name] = runner_steps(run, family, data, scratch / f"runlog-{model}-{size}-{layout}"), run
    sides["plain"] = plain
    for steps in sides.values():
        images_per_sec(steps, args.warmup, device)
    rates = rotating_chunks(sides, args, device)
    rows = []
    for name, run in runs.items():
        ratios = [r / p for r, p in zip(rates[name], rates["plain"])]
        rows.append(
            {
                "model": model,
                "size": size,
                "data": data_label,
                "batch": run.trainer.batch_size,
                "channels_last": run.trainer.channels_last,
                "runner": statistics.median(rates[name]),
                "plain": statistics.median(rates["plain"]),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "chunks": {"runner": rates[name], "plain": rates["plain"]},
            }
        )
        print(
            f"{model} {data_label} {name}: runner {rows[-1]['runner']:.0f} img/s, plain {rows[-1]['plain']:.0f} "
            f"img/s, ratio {rows[-1]['ratio']:.3f} (per repeat {min(ratios):.3f}..{max(ratios):.3f})",
            flush=True,
        )
    return rows


def throughput_table(rows: list[dict], args) -> str:
    lines = [
        "| model | size | data | batch | channels_last | runner img/s | plain img/s | runner / plain (min..max) |",
        "|---|---|---|---:|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['size']} | {r['data']} | {r['batch']} | {r['channels_last']} | {r['runner']:.0f} | "
        f"{r['plain']:.0f} | "
        f"{r['ratio']:.3f} ({r['ratio_min']:.3f}..{r['ratio_max']:.3f}) |"
        for r in rows
    ]
    return "\n".join(
        [
            f"Training throughput on {args.device} ({torch.get_num_threads()} threads), torch {torch.__version__}"
            f"{set_note(args)}, {clock_note(args)}: "
            f"median of {args.repeats} chunks of {args.steps_per_chunk} steps per side (rotating order) after "
            f"{args.warmup} warm-up steps; the ratio is the median of the per-repeat ratios. The plain loop's "
            "networks keep the default memory layout.",
            "",
            *lines,
        ]
    )


# ============================================================================ speed options
VARIANTS = {  # each names both options, so that the table does not depend on their defaults
    "neither": ["trainer.channels_last=false", "trainer.compile=false"],
    "channels_last": ["trainer.channels_last=true", "trainer.compile=false"],
    "compile": ["trainer.channels_last=false", "trainer.compile=true"],
    "compile+channels_last": ["trainer.channels_last=true", "trainer.compile=true"],
}


def family_overrides(model: str, data_overrides: list[str], args, scratch: Path) -> list[str]:
    """``model``'s default config as ``vaegan-train`` composes it, on ``args.device``, with ``--set``'s
    overrides, caching synthetic data in ``scratch``."""
    return [
        f"model={model}",
        *data_overrides,
        f"device={args.device}",
        "log.progress_bar=false",
        *scratch_cache(args.dataset, scratch),
        *args.overrides,
    ]


def speed_options(model: str, size: int, args, scratch: Path) -> list[dict]:
    """Runner images/s of each ``VARIANTS`` entry, the families made as ``vaegan-train`` makes them."""
    from vaegan_runner.train import build_family
    from vaegan_runner.training.distributed import Distributed

    data_overrides, data_label = dataset_overrides(size, args.dataset)
    base = family_overrides(model, data_overrides, args, scratch)
    device = torch.device(args.device)
    data = load_data(validated(base).dataset, device)
    torch._dynamo.reset()  # a fresh start for each model and size (dynamo's recompile limit)
    sides: dict[str, Steps] = {}
    first_step: dict[str, float] = {}
    variants = {name: VARIANTS[name] for name in args.variants}
    for name, extra in variants.items():
        run = validated([*base, *extra])
        torch.manual_seed(run.seed)  # the same initial weights in every variant
        family = build_family(run, data, device, Distributed())
        sides[name] = runner_steps(run, family, data, scratch / f"runlog-{model}-{size}-{name}")
        start = clock()
        next(sides[name])
        sync(device)
        first_step[name] = clock() - start
        images_per_sec(sides[name], args.warmup, device)
    names = list(variants)
    rates = rotating_chunks(sides, args, device)
    rows = []
    for name in names:
        ratios = [r / d for r, d in zip(rates[name], rates["neither"])]
        without_compile = name.replace("compile+", "").replace("compile", "neither")
        rows.append(
            {
                "model": model,
                "size": size,
                "data": data_label,
                "batch": run.trainer.batch_size,
                "variant": name,
                "img_s": statistics.median(rates[name]),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "first_step_s": first_step[name],
                "compile_s": first_step[name] - first_step[without_compile] if "compile" in name else None,
                "chunks": rates[name],
            }
        )
        print(
            f"{model} {data_label} {name}: {rows[-1]['img_s']:.0f} img/s, x{rows[-1]['ratio']:.3f} "
            f"({min(ratios):.3f}..{max(ratios):.3f}), first step {first_step[name]:.2f} s",
            flush=True,
        )
    return rows


def clock_note(args) -> str:
    return "images per CPU-second of the process" if args.clock == "cpu" else "images per wall-clock second"


def set_note(args) -> str:
    return f" with {' '.join(args.overrides)}" if args.overrides else ""


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def options_table(rows: list[dict], args) -> str:
    lines = [
        "| model | size | batch | variant | img/s | ratio to neither (min..max) | compile s |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['data']} | {r['batch']} | {r['variant']} | {r['img_s']:.0f} | "
        f"{r['ratio']:.3f} ({r['ratio_min']:.3f}..{r['ratio_max']:.3f}) | "
        f"{seconds(r['compile_s'])} |"
        for r in rows
    ]
    return "\n".join(
        [
            f"Speed options on {args.device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
            f"{clock_note(args)}, runner "
            f"hot path, default config{set_note(args)}: median of {args.repeats} chunks of {args.steps_per_chunk} "
            "steps "
            f"per variant (rotating order) after the first step and {args.warmup} warm-up steps; the ratio is the "
            "median of the per-repeat ratios. Input batches stay NCHW (the loop does not convert them). Compile s: "
            "first step less the first step without compile (cold Inductor cache).",
            "",
            *lines,
        ]
    )


# ============================================================================ families side by side
def family_speed(size: int, args, scratch: Path) -> list[dict]:
    """Images/s of each family in ``args.families`` with its default config, interleaved."""
    from vaegan_runner.train import build_family
    from vaegan_runner.training.distributed import Distributed

    data_overrides, data_label = dataset_overrides(size, args.dataset)
    device = torch.device(args.device)
    sides: dict[str, Steps] = {}
    batch: dict[str, int] = {}
    loaded: dict[str, object] = {}  # one copy of each dataset config's images for all the families
    epoch_images = 0
    for name in args.families:
        family_name, *overrides = name.split(":")
        run = validated([*family_overrides(family_name, data_overrides, args, scratch), *overrides])
        if repr(run.dataset) not in loaded:
            loaded[repr(run.dataset)] = load_data(run.dataset, device)
        data = loaded[repr(run.dataset)]
        epoch_images = len(data.train)
        torch.manual_seed(run.seed)
        family = build_family(run, data, device, Distributed())
        sides[name] = runner_steps(run, family, data, scratch / f"runlog-family-{name}")
        batch[name] = run.trainer.batch_size
        images_per_sec(sides[name], args.warmup, device)
    names = list(sides)
    rates = rotating_chunks(sides, args, device)
    gan = next((name for name in names if name.split(":")[0] == "gan"), None)
    rows = []
    for name in names:
        # time per image relative to the (first) GAN entry's: its rate over this family's, chunk by chunk
        ratios = [g / r for r, g in zip(rates[name], rates[gan])] if gan else None
        # img/s relative to the first entry of the same family (vae:trainer.channels_last=true against vae)
        first = next(n for n in names if n.split(":")[0] == name.split(":")[0])
        vs_first = [r / f for r, f in zip(rates[name], rates[first])] if first != name else None
        img_s = statistics.median(rates[name])
        rows.append(
            {
                "model": name,
                "data": data_label,
                "batch": batch[name],
                "img_s": img_s,
                "epoch_images": epoch_images,
                "s_per_epoch": epoch_images / img_s,
                "time_vs_gan": statistics.median(ratios) if ratios else None,
                "time_vs_gan_min": min(ratios) if ratios else None,
                "time_vs_gan_max": max(ratios) if ratios else None,
                "vs_first": first if vs_first else None,
                "img_s_vs_first": statistics.median(vs_first) if vs_first else None,
                "img_s_vs_first_min": min(vs_first) if vs_first else None,
                "img_s_vs_first_max": max(vs_first) if vs_first else None,
                "chunks": rates[name],
            }
        )
        print(f"{name} {data_label}: {img_s:.0f} img/s, {epoch_images / img_s:.0f} s per epoch", flush=True)
    return rows


def family_table(rows: list[dict], args) -> str:
    lines = [
        "| family | data | batch | img/s | s per epoch (training images) | time per image / GAN's (min..max) "
        "| img/s / the family's first entry's (min..max) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        vs_gan = (
            f"{r['time_vs_gan']:.2f} ({r['time_vs_gan_min']:.2f}..{r['time_vs_gan_max']:.2f})"
            if r["time_vs_gan"] is not None
            else "-"
        )
        vs_first = (
            f"{r['img_s_vs_first']:.3f} ({r['img_s_vs_first_min']:.3f}..{r['img_s_vs_first_max']:.3f})"
            if r["vs_first"]
            else "-"
        )
        lines.append(
            f"| {r['model']} | {r['data']} | {r['batch']} | {r['img_s']:.0f} | "
            f"{r['s_per_epoch']:.0f} ({r['epoch_images']}) | {vs_gan} | {vs_first} |"
        )
    return "\n".join(
        [
            f"Families side by side on {args.device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
            f"{clock_note(args)}, "
            f"runner hot path, each family's default config{set_note(args)}: median of {args.repeats} chunks of "
            f"{args.steps_per_chunk} steps per family (rotating order) after {args.warmup} warm-up steps.",
            "",
            *lines,
        ]
    )


# ============================================================================ startup
def startup(args, scratch: Path) -> tuple[list[dict], str]:
    """Wall seconds of whole 1-step training processes, cache off and on (interleaved)."""
    data_overrides, data_label = dataset_overrides(28)
    base = ["model=vae", *data_overrides, "trainer.max_steps=1", f"device={args.device}", "log.progress_bar=false"]
    composed = compose(base)
    base += [f"{key}={json.dumps(value)}" for key, value in CHEAP_END.items() if has_key(composed, key)]
    env = {
        **os.environ,
        "VAEGAN_CACHE_DIR": str(scratch / "startup-cache"),
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    variants = {"off": ["dataset.cache_dir=null"], "on": []}

    def wall(name: str, i: int) -> float:
        cmd = [
            sys.executable,
            "-m",
            "vaegan_runner.train",
            *base,
            *variants[name],
            f"hydra.run.dir={scratch / f'startup-{name}-{i}'}",
        ]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"benchmark_speed: {shlex.join(cmd)} failed:\n{done.stderr[-3000:]}")
        return seconds

    wall("on", -1)  # fills the cache
    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(args.startup_runs):
        for name in ("off", "on") if i % 2 == 0 else ("on", "off"):
            times[name].append(wall(name, i))
    rows = [
        {"cache": name, "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "runs": t}
        for name, t in times.items()
    ]
    command = shlex.join(["python", "-m", "vaegan_runner.train", *base])
    lines = ["| decoded-dataset cache | time to finish 1 step, median s | min..max s |", "|---|---:|---:|"]
    lines += [f"| {r['cache']} | {r['median_s']:.2f} | {r['min_s']:.2f}..{r['max_s']:.2f} |" for r in rows]
    text = "\n".join(
        [
            f"Startup: whole-process wall time of `{command}` ({data_label}), {args.startup_runs} runs "
            "each, cache off (`dataset.cache_dir=null`) and on (warm) interleaved.",
            "",
            *lines,
        ]
    )
    return rows, text


def has_key(cfg, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if part not in node:
            return False
        node = node[part]
    return True


# ============================================================================ data loading
def data_loading(args, scratch: Path) -> tuple[list[dict], str]:
    """load_data seconds: decoding every time, the first cached load (decode + write), cache hits."""
    setups = [
        ("shapes 28x28x1", ["dataset=shapes"]),
        ("shapes 32x32x3", ["dataset=shapes", "dataset.image_size=32", "dataset.channels=3"]),
    ]
    root = mnist_root()
    if root is not None:
        setups[:0] = [
            (name, [f"dataset={name}", f"dataset.root={root}", "dataset.download=false"])
            for name in ("mnist", "fashion_mnist")
            if (root / {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name] / "raw").is_dir()
        ]
    device = torch.device(args.device)
    rows = []
    for label, overrides in setups:
        cfg = validated([*overrides, f"device={args.device}"]).dataset

        def seconds(c) -> float:
            start = time.perf_counter()
            load_data(c, device)
            return time.perf_counter() - start

        uncached = replace(cfg, cache_dir=None)
        cached = replace(cfg, cache_dir=str(scratch / "data-cache"))
        decode = [seconds(uncached) for _ in range(args.data_runs)]
        first = seconds(cached)
        hits = [seconds(cached) for _ in range(args.data_runs)]
        rows.append(
            {
                "dataset": label,
                "decode_s": statistics.median(decode),
                "first_s": first,
                "hit_s": statistics.median(hits),
                "decode_runs": decode,
                "hit_runs": hits,
            }
        )
        print(f"{label}: decode {rows[-1]['decode_s']:.3f} s, cache hit {rows[-1]['hit_s']:.3f} s", flush=True)
    lines = [
        "| dataset | decode s | first cached load (decode + write) s | cache hit s | speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['dataset']} | {r['decode_s']:.3f} | {r['first_s']:.3f} | {r['hit_s']:.3f} | "
        f"{r['decode_s'] / r['hit_s']:.0f}x |"
        for r in rows
    ]
    text = "\n".join(
        [
            f"Data loading: `load_data` seconds, median of {args.data_runs} (train and test splits, uint8 in memory).",
            "",
            *lines,
        ]
    )
    return rows, text


# ============================================================================ main
SECTIONS = ("throughput", "options", "families", "startup", "data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=["throughput"])
    parser.add_argument("--models", nargs="+", choices=list(PLAIN), default=list(PLAIN))
    parser.add_argument(
        "--families",
        nargs="+",
        default=list(FAMILY_NAMES),
        help="family names, each optionally followed by :KEY=VALUE overrides (vae:model.prior=gaussian)",
    )
    parser.add_argument(
        "--dataset",
        choices=["auto", "cifar10"],
        default="auto",
        help="auto: MNIST (or grey shapes) at 28, colour shapes at other sizes; cifar10: CIFAR-10 resized to each size",
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[28, 32], help="image sizes (families: 28 under auto)")
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for the runner side of every section but startup and data (trainer.channels_last=true)",
    )
    parser.add_argument(
        "--channels-last",
        nargs="+",
        choices=["config", "false", "true"],
        default=["config"],
        help="throughput: one runner side per value (config: the composed config's trainer.channels_last)",
    )
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="options: the variants to time"
    )
    parser.add_argument("--repeats", type=int, default=9, help="timed chunks per side")
    parser.add_argument("--steps-per-chunk", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per side first")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="throughput, options, families: seconds of the wall clock, or of the process's CPU time (cpu: "
        "for a machine other jobs share; use it with --threads 1 and --device cpu)",
    )
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--data-runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    unknown = [name for name in args.families if name.split(":")[0] not in family_names()]
    if unknown:
        parser.error(f"--families: unknown family in {', '.join(unknown)}; known: {', '.join(family_names())}")
    if any(size < 8 for size in args.sizes):
        parser.error(f"--sizes: every size must be at least 8, got {args.sizes}")
    args.variants = ["neither", *(v for v in args.variants if v != "neither")]  # the ratios' baseline
    if args.clock == "cpu" and (args.device != "cpu" or args.threads != 1):
        parser.error("--clock cpu: the process's CPU time is the steps' time only with --device cpu --threads 1")
    global clock
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join(["python", *sys.argv])
    print(f"$ {command}", flush=True)
    report, texts = (
        {
            "command": command,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": args.device,
            "clock": args.clock,
        },
        [],
    )
    with tempfile.TemporaryDirectory(prefix="vaegan-bench-") as tmp:
        scratch = Path(tmp)
        if "throughput" in args.sections:
            rows = [
                row for model in args.models for size in args.sizes for row in throughput(model, size, args, scratch)
            ]
            report["throughput"] = rows
            texts.append(throughput_table(rows, args))
        if "options" in args.sections:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(scratch / "inductor")  # cold compiles (import set it)
            rows = [
                row for model in args.models for size in args.sizes for row in speed_options(model, size, args, scratch)
            ]
            report["options"] = rows
            texts.append(options_table(rows, args))
        if "families" in args.sections:
            sizes = args.sizes if args.dataset != "auto" else [28]
            rows = [row for size in sizes for row in family_speed(size, args, scratch)]
            report["families"] = rows
            texts.append(family_table(rows, args))
        for name, section in (("startup", startup), ("data", data_loading)):
            if name in args.sections:
                report[name], text = section(args, scratch)
                texts.append(text)
    print("\n" + "\n\n".join([f"`{command}`", *texts]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
