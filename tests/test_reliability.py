"""Runs that survive: resume=auto, kills, signals, corrupt checkpoints, non-finite losses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from runner_utils import REPO, VAE_CURVE, compose_config, read_events, run_cli, scalar_series
from vaegan_runner.models.vae import VAE
from vaegan_runner.train import run as train_run
from vaegan_runner.training.checkpoint import list_checkpoints, load_checkpoint
from vaegan_runner.training.stopping import EXIT_DIVERGED, EXIT_INTERRUPTED, Diverged, StopRequest

CURVE = VAE_CURVE


def run_dirs(root):
    return sorted(p for p in root.iterdir() if p.is_dir())


def popen_cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "vaegan_runner.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoint(root, step, proc, timeout=120):
    deadline = time.time() + timeout
    name = f"step_{step:08d}.pt"
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if list(root.glob(f"outputs/*/*/checkpoints/{name}")):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {name} after {timeout} s")


def series(run_dir, tag="loss/neg_elbo"):
    return dict(scalar_series(read_events(run_dir), tag))


@pytest.mark.slow
def test_sigkill_then_resume_auto_continues_the_same_curve(tmp_path):
    slow = ["trainer.max_steps=1000"]  # long enough to be killed mid-run
    whole = tmp_path / "whole"
    whole.mkdir()
    assert run_cli([*CURVE, "trainer.max_steps=40"], cwd=whole).returncode == 0
    expected = series(run_dirs(whole / "outputs" / "vae-shapes")[0])

    killed = tmp_path / "killed"
    killed.mkdir()
    proc = popen_cli([*CURVE, *slow], cwd=killed)
    wait_for_checkpoint(killed, 20, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    result = run_cli([*CURVE, "trainer.max_steps=40", "resume=auto"], cwd=killed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" in result.stdout + result.stderr
    dirs = run_dirs(killed / "outputs" / "vae-shapes")
    assert len(dirs) == 1, "the resumed session must write into the killed run's directory, and leave no other"
    resumed = series(dirs[0])
    assert sorted(resumed) == sorted(expected) == list(range(5, 45, 5))  # no duplicate, no missing point
    for step in expected:
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_exits_3(tmp_path):
    proc = popen_cli([*CURVE, "trainer.max_steps=100000", "checkpoint.every_n_steps=100000"], cwd=tmp_path)
    # wait until training runs (the first TensorBoard flush), then ask it to stop
    deadline = time.time() + 120
    while not list(tmp_path.glob("outputs/*/*/events.out.tfevents.*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "resume=auto" in stderr
    run_dir = run_dirs(tmp_path / "outputs" / "vae-shapes")[0]
    (checkpoint,) = list_checkpoints(run_dir / "checkpoints")
    assert load_checkpoint(checkpoint)["step"] > 0
    assert not (run_dir / "metrics.json").exists()  # not a finished result
    assert "stopped by SIGTERM" in (run_dir / "train.log").read_text()  # the log says why it ended


def test_second_interrupt_exits_at_once(monkeypatch):
    exits = []
    monkeypatch.setattr(os, "_exit", lambda code: exits.append(code))
    # Python's own handler to start from: a shell's background job starts with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.requested and stop.signal_name == "SIGINT" and exits == []
            os.kill(os.getpid(), signal.SIGINT)
            assert exits == [130]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_resume_auto_without_an_earlier_run_starts_fresh(tmp_path, caplog):
    caplog.set_level("INFO")
    train_run(compose_config([*CURVE, "trainer.max_steps=10", "resume=auto"]), tmp_path / "vae-shapes" / "a")
    assert "starting fresh" in caplog.text


@pytest.mark.slow
def test_resume_auto_ignores_runs_with_other_settings(tmp_path, caplog):
    caplog.set_level("INFO")
    runs = tmp_path / "vae-shapes"
    train_run(compose_config([*CURVE, "trainer.max_steps=10", "optimizer.lr=0.01"]), runs / "a")
    train_run(compose_config([*CURVE, "trainer.max_steps=10"]), runs / "b")
    caplog.clear()
    train_run(compose_config([*CURVE, "trainer.max_steps=20", "resume=auto"]), runs / "c")
    assert f"writing to {runs / 'b'}" in caplog.text  # the run with the same settings, extended
    assert sorted(series(runs / "b")) == [5, 10, 15, 20] and sorted(series(runs / "a")) == [5, 10]
    assert not (runs / "c" / "checkpoints").exists()


@pytest.mark.slow
def test_a_fresh_run_never_writes_among_another_runs_checkpoints(tmp_path):
    run_dir = tmp_path / "fixed"
    first = run_cli([*CURVE, "trainer.max_steps=20", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = [(p.name, p.stat().st_mtime_ns) for p in list_checkpoints(run_dir / "checkpoints")]
    record = {p: p.read_bytes() for p in [*(run_dir / ".hydra").iterdir(), run_dir / "train.log"]}
    assert kept and len(record) == 4
    # other settings with resume=auto: nothing to continue, and the folder is taken
    other = run_cli(
        [*CURVE, "trainer.max_steps=20", "model.conditional=true", "resume=auto", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
    )
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "hydra.run.dir" in other.stderr and "already holds another run's checkpoints" in other.stderr
    assert "model.conditional is False in the checkpoint and True here" in other.stderr
    assert f"resume={run_dir} without the settings that differ" in other.stderr
    # the same settings without resume: the message says how to continue it
    same = run_cli([*CURVE, "trainer.max_steps=30", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert same.returncode == 2 and "resume=auto would continue it" in same.stderr
    assert [(p.name, p.stat().st_mtime_ns) for p in list_checkpoints(run_dir / "checkpoints")] == kept
    assert all(p.read_bytes() == content for p, content in record.items())  # Hydra's record of it too
    elsewhere = tmp_path / "other"  # continuing another run with this folder named: refused as well
    train_run(compose_config([*CURVE, "trainer.max_steps=10"]), elsewhere)
    other_run = run_cli([*CURVE, "trainer.max_steps=20", f"resume={elsewhere}", f"hydra.run.dir={run_dir}"], tmp_path)
    assert other_run.returncode == 2 and "does not continue it" in other_run.stderr
    assert all(p.read_bytes() == content for p, content in record.items())
    # and resume=auto with the same settings continues it there
    extended = run_cli([*CURVE, "trainer.max_steps=30", "resume=auto", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert extended.returncode == 0, extended.stderr[-2000:]
    assert sorted(series(run_dir)) == [5, 10, 15, 20, 25, 30]


@pytest.mark.slow
def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    run_dir = tmp_path / "run"
    train_run(compose_config([*CURVE, "trainer.max_steps=20"]), run_dir)
    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a torn file
    results = train_run(compose_config([*CURVE, "trainer.max_steps=30", f"resume={run_dir}"]), tmp_path / "new")
    assert "skipping a broken checkpoint" in caplog.text and "step_00000020.pt" in caplog.text
    assert results["eval/neg_elbo"] > 0
    assert series(run_dir).keys() >= {15, 20, 25, 30}


@pytest.mark.slow
def test_corrupt_checkpoint_named_directly_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    train_run(compose_config([*CURVE, "trainer.max_steps=10"]), run_dir)
    checkpoint = list_checkpoints(run_dir / "checkpoints")[-1]
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    result = run_cli([*CURVE, "trainer.max_steps=20", f"resume={checkpoint}"], cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a readable vaegan-runner checkpoint" in result.stderr and "Traceback" not in result.stderr


def nan_at(steps, times=None):
    """Make the VAE's loss NaN on the given 0-based steps (a bad batch, a hardware glitch), the
    first ``times`` times they run (a replayed step may pass)."""
    original = VAE.elbo_losses
    left = [times if times is not None else float("inf")]

    def elbo_losses(self, x, y, step):
        losses, logs = original(self, x, y, step)
        if step in steps and left[0] > 0:
            left[0] -= 1
            bad = losses["encoder"] * float("nan")
            return {"encoder": bad, "decoder": bad}, {**logs, "neg_elbo": logs["neg_elbo"] * float("nan")}
        return losses, logs

    return elbo_losses


@pytest.mark.slow
def test_nonfinite_stop_names_the_loss_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(VAE, "elbo_losses", nan_at({12}))
    run_dir = tmp_path / "run"
    with pytest.raises(Diverged, match=r"non-finite loss/neg_elbo.*at step 13") as err:
        train_run(compose_config([*CURVE, "trainer.max_steps=30"]), run_dir)
    assert "step_00000010.pt" in str(err.value)
    (checkpoint,) = list_checkpoints(run_dir / "checkpoints")
    state = load_checkpoint(checkpoint)
    assert state["step"] == 10
    assert all(torch.isfinite(t).all() for t in state["family"].values() if t.is_floating_point())
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_the_divergence_advice_works_as_written(tmp_path, monkeypatch):
    """The message says: lower optimizer.lr and add resume=<run dir>; doing exactly that
    continues the diverged run from its last good checkpoint at the new learning rate."""
    monkeypatch.setattr(VAE, "elbo_losses", nan_at({12}, times=1))
    run_dir = tmp_path / "run"
    with pytest.raises(Diverged) as err:
        train_run(compose_config([*CURVE, "trainer.max_steps=30", "optimizer.lr=0.002"]), run_dir)
    advice = re.search(r"add (resume=\S+) to the same command", str(err.value))
    assert advice and advice.group(1) == f"resume={run_dir}", str(err.value)
    command = [*CURVE, "trainer.max_steps=30", "optimizer.lr=0.0005", advice.group(1)]
    results = train_run(compose_config(command), tmp_path / "unused")
    assert results["eval/neg_elbo"] > 0 and not (tmp_path / "unused").exists()
    lr = series(run_dir, "lr/encoder")
    assert lr[10] == pytest.approx(0.002) and lr[15] == pytest.approx(0.0005) and lr[30] == pytest.approx(0.0005)
    assert load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])["step"] == 30


def test_a_divergence_before_any_checkpoint_says_there_is_nothing_to_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(VAE, "elbo_losses", nan_at({3}))
    with pytest.raises(Diverged, match="nothing to resume") as err:
        train_run(compose_config([*CURVE, "trainer.max_steps=30"]), tmp_path / "run")
    assert "resume=" not in str(err.value)


@pytest.mark.slow
def test_nonfinite_skip_leaves_the_weights_untouched(tmp_path, monkeypatch):
    seen = {}
    original = nan_at({6})

    def elbo_losses(self, x, y, step):
        if step in (6, 7):
            seen[step] = {k: v.detach().clone() for k, v in self.encoder.named_parameters()}
        return original(self, x, y, step)

    monkeypatch.setattr(VAE, "elbo_losses", elbo_losses)
    results = train_run(compose_config([*CURVE, "trainer.max_steps=20", "trainer.on_nonfinite=skip"]), tmp_path / "run")
    assert all(torch.equal(seen[6][k], seen[7][k]) for k in seen[6])  # step 7 saw step 6's weights
    assert results["eval/neg_elbo"] > 0
    notes = read_events(tmp_path / "run").Tags()["tensors"]
    assert any(tag.startswith("warnings") for tag in notes)


@pytest.mark.slow
def test_nonfinite_rollback_restores_the_checkpoint_with_a_lower_lr(tmp_path, monkeypatch):
    monkeypatch.setattr(VAE, "elbo_losses", nan_at({14}, times=1))
    run_dir = tmp_path / "run"
    train_run(
        compose_config([*CURVE, "trainer.max_steps=30", "trainer.on_nonfinite=rollback", "optimizer.lr=0.001"]), run_dir
    )
    lr = series(run_dir, "lr/encoder")
    assert sorted(lr) == list(range(5, 35, 5))  # the curve restarts at 10 without duplicates
    assert lr[10] == pytest.approx(0.001) and lr[15] == pytest.approx(0.0005) and lr[30] == pytest.approx(0.0005)
    assert load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])["rollbacks"] == 1


@pytest.mark.slow
def test_nonfinite_rollback_gives_up_after_max_rollbacks(tmp_path, monkeypatch):
    monkeypatch.setattr(VAE, "elbo_losses", nan_at(set(range(3, 100))))
    with pytest.raises(Diverged, match="2 rollbacks used") as err:
        train_run(
            compose_config(
                [*CURVE, "trainer.max_steps=30", "trainer.on_nonfinite=rollback", "trainer.max_rollbacks=2"]
            ),
            tmp_path / "run",
        )
    advice = str(err.value)  # not the policy that just gave up
    assert "allow more rollbacks (trainer.max_rollbacks)" in advice and "try trainer.on_nonfinite" not in advice


@pytest.mark.slow
def test_a_diverging_cli_run_exits_4_with_one_message(tmp_path):
    result = run_cli([*CURVE, "trainer.max_steps=50", "optimizer.lr=1e30"], cwd=tmp_path)
    assert result.returncode == EXIT_DIVERGED, result.stderr[-2000:]
    assert "vaegan-train: diverged: non-finite" in result.stderr and "Traceback" not in result.stderr


def test_a_changed_group_is_named_once():
    """Another model differs in every model key; the message names the model, not each key."""
    from vaegan_runner.training.resume_check import setting_changes

    gan = {"name": "gan", "latent_dim": 64, "ema": {"enabled": False}}
    bigan = {"name": "bigan", "latent_dim": 32, "encoder_type": "gaussian"}
    assert setting_changes(gan, bigan, "model") == ["model is 'gan' in the checkpoint and 'bigan' here"]
    wider = {**gan, "latent_dim": 128}
    assert setting_changes(gan, wider, "model") == ["model.latent_dim is 64 in the checkpoint and 128 here"]
