"""One run per folder (config/run_lock.py): a second run into a folder that a live run holds is
refused before it writes anything, naming the holder; a killed holder never blocks a later run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner_utils import FAST, REPO, run_cli
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.config.run_lock import LOCK_NAME, hold, holds, release

HOLDER = (
    "import sys, time; from vaegan_runner.config.run_lock import hold; "
    "hold(sys.argv[1], 'hydra.run.dir'); print('held', flush=True); time.sleep(120)"
)


def start_holder(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder`` until it is killed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_folder_held_by_another_process_is_refused_naming_it(tmp_path):
    holder = start_holder(tmp_path / "run")
    try:
        with pytest.raises(ConfigError) as err:
            hold(tmp_path / "run", "hydra.run.dir")
        message = str(err.value)
        assert err.value.key == "hydra.run.dir"
        assert str((tmp_path / "run").resolve()) in message and f"PID {holder.pid} on host" in message
        assert "hydra.run.dir=<another path>" in message
        assert not holds(tmp_path / "run")
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    holder = start_holder(tmp_path / "run")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    left = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert left["pid"] == holder.pid  # the file stays behind; the OS dropped the lock with the process
    assert hold(tmp_path / "run", "hydra.run.dir") is True
    try:
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        release(tmp_path / "run")


def test_holding_twice_in_one_process_is_one_hold_and_release_removes_the_file(tmp_path):
    assert hold(tmp_path / "run", "hydra.run.dir") is True
    assert hold(tmp_path / "run", "hydra.run.dir") is False  # already ours
    assert holds(tmp_path / "run") and (tmp_path / "run" / LOCK_NAME).is_file()
    release(tmp_path / "run")
    assert not holds(tmp_path / "run") and list((tmp_path / "run").iterdir()) == []


def test_a_lock_file_removed_between_open_and_lock_is_not_trusted(tmp_path, monkeypatch):
    """The last holder removes the lock file as it ends; a process that opened the old file just
    before must not believe it holds the folder while a third one locks the new file."""
    import fcntl

    import vaegan_runner.config.run_lock as run_lock

    folder = tmp_path / "run"
    real_flock, calls = fcntl.flock, []

    def flock(fd, op):
        calls.append(fd)
        if len(calls) == 1:  # the first try: the file is removed under us, as a holder ending would
            (folder / LOCK_NAME).unlink()
        return real_flock(fd, op)

    monkeypatch.setattr(run_lock.fcntl, "flock", flock)
    try:
        assert hold(folder, "hydra.run.dir") is True
        assert len(calls) == 2  # it noticed, and locked the file that is there now
        assert os.fstat(run_lock._held[folder.resolve()]).st_ino == (folder / LOCK_NAME).stat().st_ino
    finally:
        release(folder)


# --- through the CLI -------------------------------------------------------------------------------

QUICK = [
    *FAST,
    "eval.metrics=[]",
    "eval.final_metrics=[recon_mse]",
    "eval.optimized_metric=recon_mse",
    "log.image_every_n_steps=1000",
    "eval.every_n_steps=1000",
    "eval.final_max_images=64",
]


def start_run(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "vaegan_runner.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, what: str, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def record_of(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    """What a second process would have to rewrite to start in ``run_dir``: Hydra's record and the
    lock file (a run's own progress changes its checkpoints, log and event file meanwhile)."""
    files = [*sorted((run_dir / ".hydra").glob("*")), run_dir / LOCK_NAME]
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}


def held_by(folder: Path, pid: int) -> bool:
    try:
        return json.loads((folder / LOCK_NAME).read_text())["pid"] == pid
    except (OSError, ValueError):
        return False


@pytest.mark.slow
def test_a_second_run_into_a_running_runs_folder_is_refused_and_the_first_goes_on(tmp_path):
    run_dir = tmp_path / "run"
    first = start_run(
        [*QUICK, "trainer.max_steps=100000", "checkpoint.every_n_steps=5", f"hydra.run.dir={run_dir}"], tmp_path
    )
    try:
        wait_for(lambda: held_by(run_dir, first.pid) and (run_dir / ".hydra" / "overrides.yaml").is_file(), "the lock")
        before = record_of(run_dir)
        second = run_cli([*QUICK, "trainer.max_steps=301", f"hydra.run.dir={run_dir}"], tmp_path, timeout=180)
        assert first.poll() is None, "the first run ended before the second was refused: the test proves nothing"
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"vaegan-train: error: hydra.run.dir: {run_dir.resolve()} is in use by another run" in second.stderr
        assert f"PID {first.pid} on host" in second.stderr and "Traceback" not in second.stderr
        assert record_of(run_dir) == before  # nothing of the first run's rewritten
        # the first goes on training: a checkpoint after the refusal, then SIGTERM ends it as usual
        refused_at = time.time()
        wait_for(
            lambda: any(p.stat().st_mtime > refused_at for p in run_dir.glob("checkpoints/step_*.pt")), "a checkpoint"
        )
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 3, err[-3000:]  # SIGTERM: checkpoint written, exit 3
    assert not (run_dir / LOCK_NAME).exists()
    assert "trainer.max_steps=100000" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # one run's TensorBoard file
    assert (run_dir / "train.log").read_text().count(" on shapes (") == 1  # one run's log


@pytest.mark.slow
def test_resuming_a_run_that_still_runs_is_refused_before_anything_is_written(tmp_path):
    run_dir = tmp_path / "runs" / "first"
    args = [*QUICK, "trainer.max_steps=100000", "checkpoint.every_n_steps=5"]
    first = start_run([*args, f"hydra.run.dir={run_dir}"], tmp_path)
    try:
        wait_for(lambda: held_by(run_dir, first.pid) and list(run_dir.glob("checkpoints/step_*.pt")), "a checkpoint")
        before = record_of(run_dir)
        named = run_cli([f"resume={run_dir}"], tmp_path, timeout=180)
        assert named.returncode == 2, named.stderr[-3000:]
        assert f"resume: the run in {run_dir.resolve()} is still running (PID {first.pid}" in named.stderr
        assert not (tmp_path / "outputs").exists()  # refused before Hydra made this command's own folder
        # resume=auto finds it among the runs next to its own folder, once it has loaded the checkpoint
        found = run_cli([*args, "resume=auto", f"hydra.run.dir={tmp_path / 'runs' / 'second'}"], tmp_path, timeout=180)
        assert found.returncode == 2, found.stderr[-3000:]
        assert f"resume: the run in {run_dir.resolve()} is still running (PID {first.pid}" in found.stderr
        assert not (tmp_path / "runs" / "second").exists()  # its own folder, with nothing in it, is removed
        assert record_of(run_dir) == before
        assert "] - resuming " not in (run_dir / "train.log").read_text()  # neither wrote into the running log
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_a_run_killed_with_sigkill_leaves_no_lock_that_blocks_resuming_it(tmp_path):
    run_dir = tmp_path / "run"
    args = [*QUICK, "checkpoint.every_n_steps=5", f"hydra.run.dir={run_dir}"]
    first = start_run([*args, "trainer.max_steps=100000"], tmp_path)
    try:
        wait_for(lambda: list((run_dir / "checkpoints").glob("step_*.pt")), "a checkpoint")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert held_by(run_dir, first.pid)  # its lock file is still there
    later = run_cli([*args, "trainer.max_steps=20", "resume=auto"], tmp_path, timeout=300)
    assert later.returncode == 0, later.stderr[-3000:]
    assert "resuming" in later.stdout + later.stderr and (run_dir / "metrics.json").is_file()
    assert not (run_dir / LOCK_NAME).exists()


@pytest.mark.slow
def test_a_second_sweep_into_a_running_sweeps_folder_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    first = start_run(
        ["-m", *QUICK, "trainer.max_steps=100000", "optimizer.lr=1e-3", f"hydra.sweep.dir={sweep}"], tmp_path
    )
    try:
        wait_for(lambda: held_by(sweep, first.pid), "the sweep's lock")
        second = run_cli(
            ["-m", *QUICK, "trainer.max_steps=2", "optimizer.lr=1e-3", f"hydra.sweep.dir={sweep}"], tmp_path
        )
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"hydra.sweep.dir: {sweep.resolve()} is in use by another sweep (PID {first.pid}" in second.stderr
    finally:
        first.kill()
        first.wait()
