"""Data-parallel training under torchrun: 2 CPU processes (gloo) against 1 with the same
global batch, and a resume on another number of processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import SHARED

from runner_utils import REPO, VAE_CURVE, read_events, scalar_series
from vaegan_runner.build_once import built_once

pytestmark = pytest.mark.slow  # torchrun launches

# No BatchNorm: with it each process normalises its half batch by its own statistics, which
# is a different model from the one-process run (trainer.sync_batchnorm needs CUDA).
COMMON = [*VAE_CURVE, "model.net.norm=none", "optimizer.lr=2e-3"]
TOLERANCE = 0.02  # relative, per logged point: the processes draw other reparameterisation noise


def launch(args: list[str], cwd, nproc: int) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    if nproc == 1:
        command = [sys.executable, "-m", "vaegan_runner.train", *args]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "vaegan_runner.train",
            *args,
        ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def curve(run_dir, tag="loss/neg_elbo"):
    return dict(scalar_series(read_events(run_dir), tag))


@pytest.fixture(scope="module")
def one_and_two(request):
    """The 1-process and 2-process runs, trained once per test session: pytest-xdist may hand
    this module's tests to both workers, and the second then waits for the first's runs (in the
    session's shared folder) instead of training them again beside it."""
    root = request.config.stash[SHARED] / "ddp"
    runs = {nproc: root / f"run{nproc}" for nproc in (1, 2)}
    with built_once(root / "runs", "the torchrun test's runs", print):
        for nproc, run_dir in runs.items():
            if not (run_dir / "metrics.json").is_file():
                result = launch([*COMMON, "trainer.max_steps=40", f"hydra.run.dir={run_dir.name}"], root, nproc)
                assert result.returncode == 0, result.stderr[-4000:]
    return root, runs


def test_two_processes_follow_the_one_process_curve(one_and_two):
    _, runs = one_and_two
    one, two = curve(runs[1]), curve(runs[2])
    assert sorted(one) == sorted(two) == list(range(5, 45, 5))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=TOLERANCE), (step, one[step], two[step])
    assert two[40] < 0.6 * two[5]  # and it trains


def test_only_rank_0_writes(one_and_two):
    root, runs = one_and_two
    assert len(list(runs[2].glob("events.out.tfevents.*"))) == 1
    names = sorted(p.name for p in (runs[2] / "checkpoints").iterdir())
    assert names[-1] == "step_00000040.pt" and all(n.endswith(".pt") for n in names)
    assert json.loads((runs[2] / "metrics.json").read_text())["step"] == 40
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["run1", "run2"]  # rank 1 made none


def test_resume_on_another_number_of_processes(one_and_two, tmp_path):
    _, runs = one_and_two
    run = shutil.copytree(runs[2], tmp_path / "run2")  # the shared run stays as the other tests read it
    result = launch([*COMMON, "trainer.max_steps=50", f"resume={run}", "hydra.run.dir=resumed"], tmp_path, 1)
    assert result.returncode == 0, result.stderr[-4000:]
    steps = sorted(curve(run))
    assert steps == list(range(5, 55, 5))


def test_batch_that_does_not_split_is_refused(tmp_path):
    result = launch([*COMMON, "trainer.batch_size=33", "trainer.max_steps=2", "hydra.run.dir=odd"], tmp_path, 2)
    assert result.returncode != 0
    assert "trainer.batch_size: 33 does not split evenly over 2 processes" in result.stderr
