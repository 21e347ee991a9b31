"""Shared test helpers: compose the real config tree, run training in-process or as the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"

# Small, fast settings for runs on the generated shapes dataset.
SHAPES_CLASSES = 3  # ellipse, rectangle, triangle (vaegan_runner/data/shapes.py)

FAST = [
    "dataset=shapes",
    "dataset.n_train=512",
    "dataset.n_test=128",
    "device=cpu",
    "model.net.width=8",
    "trainer.batch_size=32",
    "trainer.max_epochs=null",
    "log.progress_bar=false",
    "eval.max_images=64",
    "eval.final_max_images=128",
    "eval.batch_size=64",
    "eval.n_samples=64",
    "eval.final_n_samples=128",
    "eval.iwae_k=4",
]

# 12 steps with the losses, images and held-out evaluation logged at steps 6 and 12.
LOGGED_AT_6_AND_12 = [
    "trainer.max_steps=12",
    "log.every_n_steps=6",
    "log.image_every_n_steps=6",
    "eval.every_n_steps=6",
]

# A deterministic VAE run that logs its loss curve every 5 steps and checkpoints every 10:
# the base of every resume, schedule and torchrun curve comparison.
VAE_CURVE = [
    *FAST,
    "model=vae",
    "model.latent_dim=16",  # the curves' tolerances were set at 16 (the default latent then; 32 now)
    "model.prior=gaussian",  # and with N(0, I)'s closed-form KL (the learned mixture's is sampled: noisier)
    "trainer.deterministic=true",
    "log.every_n_steps=5",
    "log.image_every_n_steps=1000",
    "eval.every_n_steps=1000",
    "checkpoint.every_n_steps=10",
]


def compose_config(overrides: list[str] = ()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m vaegan_runner.train ARGS`` in ``cwd`` (outputs/ lands there)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "HYDRA_FULL_ERROR": "0",
    }
    env.pop("HYDRA_FULL_ERROR")
    return subprocess.run(
        [sys.executable, "-m", "vaegan_runner.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_events(run_dir: Path):
    """TensorBoard's own reader over a run directory's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def scalar_series(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


OLD_METRICS_JSON = {  # what a runner before 0.4.0 wrote: the final values under metrics/
    "runner_version": "0.3.0",
    "step": 20,
    "eval/neg_elbo": 100.0,
    "metrics/domain_fid": 12.5,
    "metrics/iwae_nll": 90.0,
    "metric_counts": {"domain_fid": {"samples": 10000, "reference": 10000}},
    "complete": True,
}
