"""Soak test: a multirun killed at random moments and relaunched with ``resume=auto`` until
every job has finished; then every job is checked.

    python scripts/soak.py --jobs 8 --steps 120 --seed 0 --workdir /tmp/vaegan-soak

Each round launches the same sweep (models x seeds on the generated shapes data, the basic
launcher, one job after another) and, unless the round is the last allowed, kills it after a
random delay with SIGKILL (a crash, an OOM kill) or SIGTERM (a preemption, which must
checkpoint and exit 3). Before each kill the script reads how far every job had logged; after
it, how far its newest checkpoint reaches: the difference is the work lost to that kill.

At the end every job must have: a loadable checkpoint at the last step, ``metrics.json``, and
TensorBoard curves with exactly one point per logging interval from the first to the last
step (nothing missing, nothing twice). The script prints a summary and exits 1 on any failure.
Not part of the quick test suite: it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vaegan_runner.training.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402

LOG_EVERY = 5
TAGS = {"vae": "loss/neg_elbo", "gan": "loss/d", "aae": "loss/recon", "bigan": "loss/d"}


def sweep_args(models: list[str], seeds: int, steps: int, checkpoint_every: int) -> list[str]:
    return [
        "-m",
        f"model={','.join(models)}",
        f"seed={','.join(map(str, range(seeds)))}",
        "dataset=shapes",
        "dataset.n_train=1024",
        "dataset.n_test=256",
        "device=cpu",
        "model.net.width=8",
        "trainer.batch_size=32",
        "trainer.max_epochs=null",
        f"trainer.max_steps={steps}",
        f"log.every_n_steps={LOG_EVERY}",
        "log.image_every_n_steps=40",
        "log.progress_bar=false",
        f"checkpoint.every_n_steps={checkpoint_every}",
        "checkpoint.keep_last=2",
        "eval.every_n_steps=40",
        "eval.max_images=128",
        "eval.final_max_images=256",
        "eval.n_samples=128",
        "eval.final_n_samples=256",
        "eval.iwae_k=4",
        "resume=auto",
    ]


def job_dirs(workdir: Path) -> list[Path]:
    """Every directory that holds a job's checkpoints or events (all rounds)."""
    found = {p.parent for p in workdir.glob("outputs/multirun/*/*/events.out.tfevents.*")}
    return sorted(found)


def logged_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def progress(workdir: Path) -> dict[str, tuple[int, int]]:
    """job name -> (last logged step, last checkpointed step), over all of its directories."""
    out: dict[str, tuple[int, int]] = {}
    for run_dir in job_dirs(workdir):
        model = run_dir.name.split("model=")[1].split(",")[0]
        logged = max(logged_steps(run_dir, TAGS[model]), default=0)
        saved = list_checkpoints(run_dir / "checkpoints")
        saved_step = int(saved[-1].name[5:13]) if saved else 0
        old = out.get(run_dir.name, (0, 0))
        out[run_dir.name] = (max(old[0], logged), max(old[1], saved_step))
    return out


def check_job(run_dir: Path, steps: int) -> list[str]:
    problems = []
    model = run_dir.name.split("model=")[1].split(",")[0]
    saved = list_checkpoints(run_dir / "checkpoints")
    if not saved:
        return [f"{run_dir}: no checkpoint"]
    try:
        state = load_checkpoint(saved[-1])
        if state["step"] != steps:
            problems.append(f"{run_dir}: last checkpoint at step {state['step']}, expected {steps}")
    except Exception as err:  # the point of the soak: report, don't stop
        problems.append(f"{run_dir}: last checkpoint does not load ({err})")
    if list((run_dir / "checkpoints").glob("*.tmp")):
        problems.append(f"{run_dir}: a temporary checkpoint file was left behind")
    if not (run_dir / "metrics.json").is_file():
        problems.append(f"{run_dir}: no metrics.json")
    logged = logged_steps(run_dir, TAGS[model])
    if logged != list(range(LOG_EVERY, steps + 1, LOG_EVERY)):
        missing = sorted(set(range(LOG_EVERY, steps + 1, LOG_EVERY)) - set(logged))
        twice = sorted({s for s in logged if logged.count(s) > 1})
        problems.append(f"{run_dir}: {TAGS[model]} missing steps {missing[:10]}, duplicated {twice[:10]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vae", "gan", "aae", "bigan"])
    parser.add_argument("--seeds", type=int, default=2, help="seeds per model: jobs = models x seeds")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--checkpoint-every", type=int, default=20)
    parser.add_argument("--max-rounds", type=int, default=40)
    parser.add_argument("--kill-after", type=float, nargs=2, default=(4.0, 25.0), help="seconds, uniform")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vaegan-soak"))
    args = parser.parse_args()

    rng = random.Random(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "VAEGAN_CACHE_DIR": str(args.workdir / "cache"),
    }
    command = [
        sys.executable,
        "-m",
        "vaegan_runner.train",
        *sweep_args(args.models, args.seeds, args.steps, args.checkpoint_every),
    ]
    kills = {"SIGKILL": 0, "SIGTERM": 0}
    lost_steps, sigterm_exit_codes, rounds = [], [], 0
    started = time.time()
    while rounds < args.max_rounds:
        rounds += 1
        proc = subprocess.Popen(
            command,
            cwd=args.workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        last_round = rounds == args.max_rounds
        try:
            proc.wait(timeout=None if last_round else rng.uniform(*args.kill_after))
        except subprocess.TimeoutExpired:
            before = progress(args.workdir)
            kind = rng.choice(["SIGKILL", "SIGTERM"])
            kills[kind] += 1
            os.killpg(proc.pid, getattr(signal, kind))
            proc.wait()
            if kind == "SIGTERM":
                sigterm_exit_codes.append(proc.returncode)
            after = progress(args.workdir)
            for job, (logged, _) in before.items():
                lost_steps.append(max(0, logged - after.get(job, (0, 0))[1]))
            print(f"round {rounds}: {kind} -> exit {proc.returncode}", flush=True)
            continue
        stderr = proc.stderr.read()
        print(f"round {rounds}: finished with exit {proc.returncode}", flush=True)
        if proc.returncode != 0:
            print(stderr[-3000:], file=sys.stderr)
            return 1
        break

    finals = {}
    for run_dir in job_dirs(args.workdir):
        if (run_dir / "metrics.json").is_file():
            finals[run_dir.name] = run_dir
    problems = [p for run_dir in finals.values() for p in check_job(run_dir, args.steps)]
    expected_jobs = len(args.models) * args.seeds
    if len(finals) != expected_jobs:
        problems.append(f"{len(finals)} finished jobs, expected {expected_jobs}")
    bad_exits = [c for c in sigterm_exit_codes if c not in (3, 0)]
    if bad_exits:
        problems.append(f"SIGTERM exit codes other than 3: {bad_exits}")
    summary = {
        "jobs": expected_jobs,
        "finished_jobs": len(finals),
        "launches": rounds,
        "kills": kills,
        "resumed_launches": rounds - 1,
        "sigterm_exit_codes": sorted(set(sigterm_exit_codes)),
        "steps_lost_per_job_kill": {
            "max": max(lost_steps, default=0),
            "mean": round(sum(lost_steps) / max(1, len(lost_steps)), 2),
        },
        "checkpoint_every": args.checkpoint_every,
        "minutes": round((time.time() - started) / 60, 1),
        "problems": problems,
    }
    print(json.dumps(summary, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
