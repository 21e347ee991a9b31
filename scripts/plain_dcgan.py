#!/usr/bin/env python
"""A plain, hand-written DCGAN on colour data, its samples scored by the runner's own metrics.

    VAEGAN_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 flock /tmp/lane3.lock \
        python scripts/plain_dcgan.py --dataset cifar10 --epochs 1 --seeds 0 1 --out outputs/bench/cifar10-plain

The baseline row beside the runner's GAN in a dataset's quality table: what a user would write
from Radford et al. (2016), trained on the very pixels and training split the runner trains on,
scored by the very code and stamp that score a run.

* Data: ``vaegan_runner.data.load_data`` of the config ``vaegan-train dataset=<name>`` composes
  (with any ``dataset.<key>=`` given after the options), so the same copy, decoding, resizing,
  train/test split and decoded-dataset cache as a run's.
* Networks (Radford et al. 2016; at 32x32 G maps z (100) -> 4x4x(4w) -> 8x8x(2w) -> 16x16xw ->
  32x32xC, one more doubling per doubling of the image size): transposed 4x4 stride-2
  convolutions, batch norm and ReLU in G with tanh at the end; D the mirror, 4x4 stride-2
  convolutions with LeakyReLU 0.2 and batch norm on every layer but the first, a 4x4 valid
  convolution to one logit. Weights from N(0, 0.02), batch-norm scales from N(1, 0.02), biases 0.
* Training: Adam (lr 2e-4, betas 0.5 / 0.999) for each network, batch 64, the non-saturating
  loss (D on real and on detached fakes, then G on the same fakes, as PyTorch's DCGAN example),
  ``torch.randperm`` batches each epoch, the last partial batch dropped; seeded with ``--seeds``.
* Samples: ``--n-samples`` (10000) images from fixed latents (seed 1234) with G in eval mode,
  written as uint8 ``[N, C, H, W]`` in ``<out>/seed=<s>/samples.npz`` (``images``, the format
  ``vaegan-sample`` writes), then scored in this process by ``vaegan-eval``'s own path
  (``cli.eval.evaluate_samples``), which is ``vaegan-eval samples=<npz> dataset=<name>
  metrics=[...]``: the held-out split, the domain classifier (from the cache under
  ``VAEGAN_CACHE_DIR``, trained once when absent) and the stamps of a run's end-of-run evaluation.
  The report goes to ``samples.eval.json`` beside the samples.
* Seconds per epoch: the training loop alone, on the wall clock (``s_per_epoch``, what the
  runner's ``perf/images_per_sec`` counts) and in the process's CPU time (``cpu_s_per_epoch``:
  with one thread, what the epoch cost whatever else ran on the machine).

Prints one JSON line per seed (metrics, their stamps, seconds per epoch, the training and the
scoring command) and writes it to ``<out>/seed=<s>/result.json``. A seed already trained with the
same settings (its ``training.json`` and ``samples.npz``) is not trained again, only scored;
``--train-only`` writes the samples and stops, for scoring by a later call (when the domain
classifier is being trained elsewhere, say).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_SEED = 1234  # latents of the scored samples
METRICS = ["domain_fid", "classifier_score", "class_coverage", "precision_recall", "diversity"]


# ============================================================================ the networks
def doublings(image_size: int) -> int:
    """How many stride-2 layers take 4x4 to ``image_size`` (a power of two, at least 8)."""
    n = round(math.log2(image_size / 4))
    if image_size < 8 or 4 * 2**n != image_size:
        raise ValueError(f"the DCGAN needs a power-of-two image size >= 8, got {image_size}")
    return n


class Generator(nn.Sequential):
    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int):
        n = doublings(image_size)
        top = width * 2 ** (n - 1)  # channels at 4x4
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, top, 4, 1, 0, bias=False),
            nn.BatchNorm2d(top),
            nn.ReLU(True),
        ]
        for i in range(n - 1):
            c_in = top // 2**i
            layers += [
                nn.ConvTranspose2d(c_in, c_in // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_in // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        super().__init__(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z[:, :, None, None])


class Discriminator(nn.Sequential):
    def __init__(self, width: int, channels: int, image_size: int):
        n = doublings(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for i in range(n - 1):
            c_in = width * 2**i
            layers += [
                nn.Conv2d(c_in, 2 * c_in, 4, 2, 1, bias=False),
                nn.BatchNorm2d(2 * c_in),
                nn.LeakyReLU(0.2, True),
            ]
        layers += [nn.Conv2d(width * 2 ** (n - 1), 1, 4, 1, 0, bias=False), nn.Flatten(0)]
        super().__init__(*layers)


def dcgan_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# ============================================================================ training
def train(
    images: torch.Tensor,
    *,
    epochs: int,
    seed: int,
    latent_dim: int = 100,
    width: int = 64,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    max_steps: int | None = None,
) -> tuple[Generator, list[float], list[float]]:
    """Train on uint8 ``images`` [N, C, H, W]; returns (G in eval mode, wall seconds of each
    epoch, CPU seconds of each epoch)."""
    torch.manual_seed(seed)
    _, channels, size, _ = images.shape
    G = Generator(latent_dim, width, channels, size)
    D = Discriminator(width, channels, size)
    G.apply(dcgan_init)
    D.apply(dcgan_init)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    seconds, cpu_seconds, step = [], [], 0
    for _ in range(epochs):
        start, cpu_start = time.perf_counter(), time.process_time()
        order = torch.randperm(len(images))
        for i in range(len(images) // batch_size):
            if max_steps is not None and step >= max_steps:
                break
            real = images[order[i * batch_size : (i + 1) * batch_size]].float() / 127.5 - 1
            fake = G(torch.randn(batch_size, latent_dim))
            d_real, d_fake = D(real), D(fake.detach())
            d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()  # -log D(x) - log(1 - D(G(z)))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = F.softplus(-D(fake)).mean()  # non-saturating: -log D(G(z))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            step += 1
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    return G.eval(), seconds, cpu_seconds


@torch.no_grad()
def samples_uint8(G: Generator, n: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``n`` images [N, C, H, W] uint8 from fixed latents, G as it is (eval mode for scoring)."""
    z = torch.randn(n, G.latent_dim, generator=torch.Generator().manual_seed(seed))
    x = torch.cat([G(part) for part in z.split(500)])
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


# ============================================================================ data and scoring
def dataset_run(dataset: str, overrides: list[str]):
    """The validated run config ``vaegan-eval samples=... dataset=<dataset>`` composes."""
    from vaegan_runner.cli.eval import compose_dataset_run

    return compose_dataset_run([f"dataset={dataset}", *overrides])


def trained_samples(images: torch.Tensor, seed: int, args, command: str) -> dict:
    """Train one seed and write its samples, or read back the record of an earlier invocation
    that trained with the same settings (``training.json`` beside ``samples.npz``)."""
    folder = args.out / f"seed={seed}"
    record_file, npz = folder / "training.json", folder / "samples.npz"
    settings = {
        "dataset": args.dataset,
        "overrides": args.overrides,
        "seed": seed,
        "epochs": args.epochs,
        "width": args.width,
        "max_steps": args.max_steps,
        "n_samples": args.n_samples,
        "train_images": len(images),
    }
    if record_file.is_file() and npz.is_file():
        record = json.loads(record_file.read_text())
        if record["settings"] == settings:
            return record
    folder.mkdir(parents=True, exist_ok=True)
    G, seconds, cpu_seconds = train(images, epochs=args.epochs, seed=seed, width=args.width, max_steps=args.max_steps)
    np.savez_compressed(npz, images=samples_uint8(G, args.n_samples))
    record = {
        "settings": settings,
        "s_per_epoch": seconds,
        "cpu_s_per_epoch": cpu_seconds,
        "torch_threads": torch.get_num_threads(),
        "samples": str(npz),
        "train_command": command,
    }
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    return record


def eval_arguments(npz: str, args) -> list[str]:
    return [f"samples={npz}", f"dataset={args.dataset}", f"metrics=[{','.join(args.metrics)}]", *args.overrides]


def score(npz: str, args) -> tuple[dict, Path]:
    """``vaegan-eval samples=<npz> dataset=<dataset> metrics=[...]`` in this process: (report, its file)."""
    from vaegan_runner.cli.eval import evaluate_samples, write_report

    report, out = evaluate_samples(eval_arguments(npz, args))
    write_report(report, out)
    return report, out


def run_seed(images: torch.Tensor, seed: int, args, command: str) -> dict:
    """Train (or reuse) and score one seed; the result also goes to ``seed=<s>/result.json``."""
    record = trained_samples(images, seed, args, command)
    result = {"model": "plain DCGAN (Radford et al. 2016)", **record["settings"], **record}
    del result["settings"]
    if args.train_only:
        return result
    report, report_file = score(record["samples"], args)
    result.update(
        metrics=report["metrics"],
        metric_counts=report["metric_counts"],
        metrics_skipped=report["metrics_skipped"],
        report=str(report_file),
        eval_command=shlex.join(["vaegan-eval", *eval_arguments(record["samples"], args)]),
    )
    (args.out / f"seed={seed}" / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cifar10", help="a dataset name of configs/dataset (default cifar10)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--width", type=int, default=64, help="channels of D's first and G's last hidden layer")
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--metrics", nargs="+", default=METRICS)
    parser.add_argument("--max-steps", type=int, default=None, help="stop each run after this many batches")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/plain-dcgan"))
    parser.add_argument("--train-only", action="store_true", help="write the samples, score them in a later call")
    parser.add_argument("overrides", nargs="*", help="dataset.<key>=<value>, as on vaegan-train's command line")
    args = parser.parse_args(argv)
    bad = [o for o in args.overrides if not o.startswith("dataset.") or "=" not in o]
    if bad:
        parser.error(f"only dataset.<key>=<value> overrides are taken, got {' '.join(bad)}")
    args.out = args.out.expanduser().resolve()
    command = shlex.join(["python", "scripts/plain_dcgan.py", *(sys.argv[1:] if argv is None else argv)])
    from vaegan_runner.config.checks import ConfigError
    from vaegan_runner.data import load_data

    try:
        run = dataset_run(args.dataset, args.overrides)
        data = load_data(run.dataset, torch.device("cpu"))
        doublings(data.image_size)
        for seed in args.seeds:
            print(json.dumps(run_seed(data.train.images.cpu(), seed, args, command)), flush=True)
    except (ConfigError, ValueError) as err:
        print(f"plain_dcgan: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
