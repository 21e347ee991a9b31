#!/usr/bin/env python
"""The runner against a plain hand-written PyTorch loop: 1 epoch on real MNIST, same networks.

    flock /tmp/vaegan-bench.lock python scripts/compare_plain_loop.py --seeds 0 1

For each seed and family it
  * runs ``vaegan-train experiment=vae_mnist`` / ``experiment=gan_mnist model.ema.enabled=false``
    as a subprocess, in the scratch cwd ``<out>/runner_cwd`` (runs in its ``outputs/``);
  * trains the same networks (``vaegan_runner.models.nets.build_encoder/build_decoder``, the YAML
    defaults of ``configs/model``, asserted equal to the composed and the run's stored config)
    with a plain loop written here: gz files read with gzip + numpy, ``torch.randperm`` each
    epoch, drop_last, Adam with the experiment's lr/betas, the same batch size and seed;
  * VAE: test negative ELBO in nats/image over the 10000 test images (one posterior sample,
    nets in eval mode); the runner's number is ``eval/neg_elbo`` of its ``metrics.json``;
  * GAN: 10000 samples from each generator (eval mode, the same fixed latents), scored in the
    feature space of a small MNIST CNN trained here for 2 epochs: Frechet distance to the 10000
    test images, classifier score exp E[KL(p(y|x) || p(y))], and classes with >= 2% of samples;
  * everything runs on the CPU (the runner with ``device=cpu``);
  * seconds for the training epoch: plain = the epoch loop alone; runner = its training time
    from TensorBoard's ``perf/images_per_sec`` (which leaves out evaluation, image grids and
    checkpoints), with the whole subprocess wall time (startup and data loading included) in
    the notes.

Prints a markdown table and writes it to ``<out>/compare.md``. On colour data (CIFAR-10),
``scripts/plain_dcgan.py`` trains a plain DCGAN and scores its samples with the runner's own
metrics (``vaegan-eval samples=``); ``scripts/benchmark_speed.py --dataset cifar10`` times the
runner against the plain loops at 32x32x3 and 64x64x3.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid, save_image

from vaegan_runner.models.nets import NetConfig, build_decoder, build_encoder

REPO = Path(__file__).resolve().parents[1]
IMAGE_SIZE, CHANNELS = 28, 1
N_SAMPLES = 10_000
SAMPLE_SEED = 1234  # latents for the 10000 GAN samples (the same for both generators)
CLASSIFIER_SEED = 4321  # the feature network is independent of the runs' seeds
MIN_CLASS_SHARE = 0.02


# ============================================================================ the plain loop
# What a user would write by hand. The constants mirror configs/model/{vae,gan}.yaml and the
# experiments' optimizer/trainer keys; `check_config` asserts they equal the runner's config.
@dataclass
class Plain:
    latent_dim: int
    lr: float
    betas: tuple[float, float]
    batch_size: int
    epochs: int = 1
    net: NetConfig = field(default_factory=lambda: NetConfig(arch="conv", width=64, hidden=[512, 256], norm="batch"))


PLAIN = {
    "vae": Plain(latent_dim=16, lr=1e-3, betas=(0.9, 0.999), batch_size=128),
    "gan": Plain(latent_dim=64, lr=2e-4, betas=(0.5, 0.999), batch_size=64),
}


def read_mnist(root: Path) -> dict[str, torch.Tensor]:
    def idx(name: str, offset: int) -> np.ndarray:
        with gzip.open(root / "MNIST" / "raw" / f"{name}.gz") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    return {
        "train_x": torch.from_numpy(idx("train-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28).copy()),
        "train_y": torch.from_numpy(idx("train-labels-idx1-ubyte", 8).astype(np.int64)),
        "test_x": torch.from_numpy(idx("t10k-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28).copy()),
        "test_y": torch.from_numpy(idx("t10k-labels-idx1-ubyte", 8).astype(np.int64)),
    }


def batches(images: torch.Tensor, batch_size: int):
    """One epoch of uint8 batches in a fresh random order, last partial batch dropped."""
    order = torch.randperm(len(images))
    for i in range(len(images) // batch_size):
        yield images[order[i * batch_size : (i + 1) * batch_size]]


def plain_vae(mnist, p: Plain, seed: int) -> tuple[float, float]:
    """Returns (test negative ELBO in nats/image, seconds of training)."""
    torch.manual_seed(seed)
    enc = build_encoder(p.net, CHANNELS, IMAGE_SIZE, 2 * p.latent_dim)
    dec = build_decoder(p.net, CHANNELS, IMAGE_SIZE, p.latent_dim)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=p.lr, betas=p.betas)

    def neg_elbo(x):  # per image: Bernoulli NLL summed over pixels + analytic KL
        mu, logvar = enc(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        nll = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").flatten(1).sum(1)
        return nll + 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)

    start = time.perf_counter()
    for _ in range(p.epochs):
        for images in batches(mnist["train_x"], p.batch_size):
            loss = neg_elbo(images.float() / 255).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    enc.eval()
    dec.eval()
    with torch.no_grad():
        total = sum(neg_elbo(x.float() / 255).sum().item() for x in mnist["test_x"].split(500))
    return total / len(mnist["test_x"]), seconds


def plain_gan(mnist, p: Plain, seed: int) -> tuple[nn.Module, float]:
    """DCGAN, non-saturating loss, a D step then a G step per batch. Returns (G, seconds)."""
    torch.manual_seed(seed)
    G = build_decoder(p.net, CHANNELS, IMAGE_SIZE, p.latent_dim)  # logits; tanh applied below
    D = build_encoder(p.net, CHANNELS, IMAGE_SIZE, 1)  # BN discriminator, as the YAML
    opt_g = torch.optim.Adam(G.parameters(), lr=p.lr, betas=p.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=p.lr, betas=p.betas)
    start = time.perf_counter()
    for _ in range(p.epochs):
        for images in batches(mnist["train_x"], p.batch_size):
            real = images.float() / 127.5 - 1
            fake = torch.tanh(G(torch.randn(len(real), p.latent_dim)))
            d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = F.softplus(-D(fake)).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
    return G, time.perf_counter() - start


# ============================================================================ the runner
def composed_config(experiment: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from vaegan_runner.run_schema import validate
    from vaegan_runner.train import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return validate(compose("train", overrides=[f"experiment={experiment}", *overrides]))


def check_config(family: str, run) -> None:
    """The plain loop's constants must be the runner's config (composed, or stored in a run)."""
    p, m, o, t = PLAIN[family], run.model, run.optimizer, run.trainer
    wanted = {
        "model.name": (m.name, family),
        "model.net": (m.net, p.net),
        "model.latent_dim": (m.latent_dim, p.latent_dim),
        "optimizer.name": (o.name, "adam"),
        "optimizer.lr": (o.lr, p.lr),
        "optimizer.betas": (tuple(o.betas), p.betas),
        "optimizer.eps": (o.eps, 1e-8),
        "optimizer.weight_decay": (o.weight_decay, 0.0),
        "optimizer.per-network overrides": (o.overridden_networks(), []),
        "trainer.batch_size": (t.batch_size, p.batch_size),
        "trainer.max_epochs": (t.max_epochs, p.epochs),
        "trainer.max_steps": (t.max_steps, None),
        "trainer.grad_clip": (t.grad_clip, None),
        "dataset": ((run.dataset.name, run.dataset.image_size, run.dataset.binarize), ("mnist", 28, False)),
    }
    if family == "vae":
        wanted.update(
            {
                "model.pixel_range": (m.pixel_range, "unit"),
                "model.likelihood": (m.likelihood, "bernoulli"),
                "model.beta": (m.beta, 1.0),
                "model.kl_warmup_steps": (m.kl_warmup_steps, 0),
                "model.prior": (m.prior, "gaussian"),
            }
        )
    else:
        wanted.update(
            {
                "model.pixel_range": (m.pixel_range, "symmetric"),
                "model.loss": (m.loss, "nonsaturating"),
                "model.n_critic": (m.n_critic, 1),
                "model.ema.enabled": (m.ema.enabled, False),
                "model.discriminator": ((m.discriminator.norm, m.discriminator.spectral_norm), (p.net.norm, False)),
            }
        )
    bad = {k: v for k, v in wanted.items() if v[0] != v[1]}
    assert not bad, f"{family}: the runner's config differs from the plain loop's: {bad} (runner, plain)"


def run_runner(family: str, seed: int, args) -> tuple[Path, float]:
    """Run vaegan-train in a scratch cwd; returns (run directory, wall seconds of the process)."""
    experiment, extra = RUNNER_ARGS[family]
    overrides = [
        f"seed={seed}",
        "device=cpu",
        "log.progress_bar=false",
        f"dataset.root={args.data_dir}",
        "dataset.download=false",
        *extra,
    ]
    check_config(family, composed_config(experiment, overrides))
    cwd = args.out / "runner_cwd"
    run_dir = cwd / "outputs" / f"{experiment}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a run directory of an earlier invocation of this script
    cwd.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("vaegan-train")
    cmd = [
        str(exe) if exe.exists() else "vaegan-train",
        f"experiment={experiment}",
        *overrides,
        f"hydra.run.dir={run_dir.relative_to(cwd)}",
    ]
    print("$ (cd", cwd, "&&", " ".join(cmd) + ")", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True)
    return run_dir, time.perf_counter() - start


RUNNER_ARGS = {"vae": ("vae_mnist", []), "gan": ("gan_mnist", ["model.ema.enabled=false"])}


def runner_train_seconds(run_dir: Path, batch_size: int) -> float:
    """Training time from perf/images_per_sec: each logged value is the mean over its interval."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    seconds, last = 0.0, 0
    for event in events.Scalars("perf/images_per_sec"):
        seconds += (event.step - last) * batch_size / event.value
        last = event.step
    return seconds


def runner_checkpoint(run_dir: Path):
    """(family rebuilt from the final checkpoint with its stored config, validated RunConfig, step)."""
    from omegaconf import OmegaConf

    from vaegan_runner.models import family_class
    from vaegan_runner.run_schema import validate
    from vaegan_runner.training.checkpoint import list_checkpoints, load_checkpoint

    state = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    run = validate(OmegaConf.create(state["config"]))
    meta = state["meta"]
    family = family_class(run.model.name)(run.model, meta["channels"], meta["image_size"])
    family.load_state_dict(state["family"])
    return family.eval(), run, state["step"]


# ============================================================================ sample quality
class Classifier(nn.Module):
    """A small MNIST CNN; ``features`` is its penultimate layer (128 ReLU units)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def features(self, x):  # x in [0, 1]
        return self.body((x - 0.5) / 0.5)

    def forward(self, x):
        return self.head(self.features(x))


def train_classifier(mnist, epochs: int = 2) -> tuple[Classifier, float]:
    """Returns the classifier (eval mode) and its test accuracy."""
    torch.manual_seed(CLASSIFIER_SEED)
    net = Classifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(mnist["train_x"]))
        for i in range(0, len(order), 128):
            idx = order[i : i + 128]
            loss = F.cross_entropy(net(mnist["train_x"][idx].float() / 255), mnist["train_y"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x.float() / 255).argmax(1) for x in mnist["test_x"].split(1000)])
    return net, (pred == mnist["test_y"]).float().mean().item()


@torch.no_grad()
def describe(net: Classifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features in float64, class probabilities) for images in [0, 1]."""
    feats = torch.cat([net.features(x) for x in images.split(1000)]).double()
    return feats, net.head(feats.float()).softmax(1).double()


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2) between two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return ((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross).item()


def sample_scores(net: Classifier, images: torch.Tensor, test_feats: torch.Tensor) -> dict[str, float]:
    feats, probs = describe(net, images)
    p_y = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(1e-12).log() - p_y.log())).sum(1).mean()
    share = torch.bincount(probs.argmax(1), minlength=10).double() / len(images)
    return {
        "FD (classifier features, vs 10k test)": frechet_distance(feats, test_feats),
        "classifier score (IS-like, max 10)": kl.exp().item(),
        f"classes with >= {MIN_CLASS_SHARE:.0%} of samples": int((share >= MIN_CLASS_SHARE).sum()),
    }


@torch.no_grad()
def draw(generate, latent_dim: int) -> torch.Tensor:
    """N_SAMPLES images in [0, 1] from ``generate`` (latents -> [-1, 1]), fixed latents."""
    z = torch.randn(N_SAMPLES, latent_dim, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    return torch.cat([(generate(part) + 1) / 2 for part in z.split(1000)]).clamp(0, 1)


# ============================================================================ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--families", nargs="+", choices=["vae", "gan"], default=["vae", "gan"])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("VAEGAN_DATA_DIR", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/compare"))
    args = parser.parse_args()
    args.data_dir, args.out = args.data_dir.expanduser().resolve(), args.out.expanduser().resolve()
    raw = args.data_dir / "MNIST" / "raw"
    missing = [
        n
        for n in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
        if not (raw / f"{n}.gz").is_file()
    ]
    if missing:
        sys.exit(
            f"compare_plain_loop: real MNIST not found: {raw} lacks {', '.join(m + '.gz' for m in missing)}. "
            "Set VAEGAN_DATA_DIR or --data-dir to a folder holding MNIST/raw/*.gz."
        )
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data {args.data_dir}; out {args.out}")

    mnist = read_mnist(args.data_dir)
    rows, notes = [], []
    if "gan" in args.families:
        classifier, accuracy = train_classifier(mnist)
        print(f"feature classifier: test accuracy {accuracy:.2%}", flush=True)
        notes.append(f"Feature classifier (2 epochs, seed {CLASSIFIER_SEED}): test accuracy {accuracy:.2%}.")
        test_feats, _ = describe(classifier, mnist["test_x"].float() / 255)
        pick = torch.randperm(len(mnist["train_x"]), generator=torch.Generator().manual_seed(0))[:N_SAMPLES]
        real = sample_scores(classifier, mnist["train_x"][pick].float() / 255, test_feats)
        notes.append(
            "Reference, 10000 real training images in place of samples: "
            + "; ".join(f"{k} = {v:.4g}" for k, v in real.items())
            + "."
        )

    for seed in args.seeds:
        for family in args.families:
            p = PLAIN[family]
            run_dir, wall = run_runner(family, seed, args)
            model, run, step = runner_checkpoint(run_dir)
            check_config(family, run)
            steps_per_epoch = len(mnist["train_x"]) // p.batch_size
            assert step == p.epochs * steps_per_epoch, f"runner stopped at step {step}"
            runner_s = runner_train_seconds(run_dir, p.batch_size)
            notes.append(
                f"{family} seed {seed}: runner process wall time {wall:.1f} s "
                f"(startup, data loading, final eval, checkpoint included); run dir {run_dir}."
            )
            if family == "vae":
                metrics = json.loads((run_dir / "metrics.json").read_text())
                assert metrics["eval_images"] == len(mnist["test_x"]), metrics
                plain_value, plain_s = plain_vae(mnist, p, seed)
                results = {"test neg. ELBO (nats/image)": (metrics["eval/neg_elbo"], plain_value)}
            else:
                G, plain_s = plain_gan(mnist, p, seed)
                G.eval()
                runner_x = draw(model.generate, p.latent_dim)
                plain_x = draw(lambda z, G=G: torch.tanh(G(z)), p.latent_dim)
                save_grids(runner_x[:64], plain_x[:64], args.out, seed, first=seed == args.seeds[0])
                runner_scores = sample_scores(classifier, runner_x, test_feats)
                plain_scores = sample_scores(classifier, plain_x, test_feats)
                results = {k: (runner_scores[k], plain_scores[k]) for k in runner_scores}
            for i, (metric, (r, q)) in enumerate(results.items()):
                times = (f"{runner_s:.1f}", f"{plain_s:.1f}") if i == 0 else ("", "")
                rows.append((family, str(seed), metric, fmt(r), fmt(q), *times))
                print(f"{family} seed {seed}: {metric}: runner {fmt(r)}, plain {fmt(q)}", flush=True)
            print(f"{family} seed {seed}: seconds/epoch runner {runner_s:.1f}, plain {plain_s:.1f}", flush=True)

    table = [
        "| family | seed | metric | runner | plain loop | s/epoch runner | s/epoch plain |",
        "|---|---|---|---:|---:|---:|---:|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    text = (
        "\n".join(
            [
                f"Runner vs plain PyTorch loop, 1 epoch on MNIST, CPU ({torch.get_num_threads()} threads), "
                f"torch {torch.__version__}.",
                "",
                *table,
                "",
                "s/epoch runner: training time from TensorBoard perf/images_per_sec (evaluation, image grids "
                "and checkpoints left out); s/epoch plain: the epoch loop alone.",
                "Both sides build their networks right after seeding, in the same order, so they start from the "
                "same weights; batch order and noise draws differ. The plain GAN step follows PyTorch's DCGAN "
                "example (the G step reuses the D step's fakes); the runner draws fresh latents for its G step, "
                "one more generator forward per batch.",
                *(f"- {n}" for n in notes),
            ]
        )
        + "\n"
    )
    (args.out / "compare.md").write_text(text)
    print("\n" + text)


def fmt(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def save_grids(runner_x: torch.Tensor, plain_x: torch.Tensor, out: Path, seed: int, first: bool) -> None:
    """Sample grids: one file per generator (first seed), and both side by side (every seed)."""
    runner_grid = make_grid(runner_x, nrow=8, padding=2, pad_value=1.0)
    plain_grid = make_grid(plain_x, nrow=8, padding=2, pad_value=1.0)
    if first:
        save_image(runner_grid, out / "gan_samples_runner.png")
        save_image(plain_grid, out / "gan_samples_plain.png")
    gap = torch.ones(3, runner_grid.shape[1], 16)
    save_image(torch.cat([runner_grid, gap, plain_grid], dim=2), out / f"gan_samples_seed{seed}_runner_vs_plain.png")


if __name__ == "__main__":
    main()
