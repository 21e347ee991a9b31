"""scripts/gpu_check.sh: its budget, setup and data look-ups, and a whole --smoke run on the CPU
(every part that can run here produces numbers, the CUDA parts are skipped with the reason), so
that the script a GPU machine runs in one go cannot rot unnoticed."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import pytest

from runner_utils import REPO
from vaegan_runner.models import family_names

spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up while it loads
spec.loader.exec_module(gpu_check)


def run_script(tmp_path, *args: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "out" / "gpu_check.json"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "gpu_check.sh"),
            "run",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


# --- the budget ---------------------------------------------------------------------------------
def test_parts_share_the_time_left_by_weight_and_unused_time_goes_to_later_parts():
    now = time.time()
    budget = gpu_check.Budget(100 + gpu_check.END_RESERVE, now)
    assert budget.start_part(1.0, 3.0) == pytest.approx(25.0, abs=0.1)
    budget.deadline -= 10  # 10 s went by; the next part shares what is left with the one after it
    assert budget.start_part(1.0, 1.0) == pytest.approx(45.0, abs=0.1)
    budget.deadline = time.time() - 1
    assert budget.start_part(1.0, 1.0) == 0.0
    assert budget.hard_deadline == budget.deadline


def test_smoke_gives_every_part_its_minimum_and_room_to_finish():
    budget = gpu_check.Budget(1.0, time.time(), smoke=True)
    assert budget.start_part(1.0, 5.0) == gpu_check.SMOKE_MIN_SHARE
    assert budget.hard_deadline >= time.time() + gpu_check.SMOKE_PART_LIMIT - 1


# --- setup --------------------------------------------------------------------------------------
def fake_data(root, mnist=True, cifar=True):
    if mnist:
        for name in gpu_check.MNIST_FILES:
            (root / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            (root / "MNIST" / "raw" / name).write_bytes(b"x")
    if cifar:
        (root / gpu_check.CIFAR_ARCHIVE).parent.mkdir(parents=True, exist_ok=True)
        (root / gpu_check.CIFAR_ARCHIVE).write_bytes(b"y")
    return root


def test_data_is_found_in_the_given_folder_only_or_else_in_the_carried_and_stashed_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "REPO", tmp_path / "repo")  # no ../shared/data or shared/data beside it
    given = fake_data(tmp_path / "given", cifar=False)
    carry, stash = tmp_path / "carry", tmp_path / "stash"
    fake_data(stash / "data", mnist=False)
    assert gpu_check.find_data(given, carry, stash) == {"mnist": given.resolve(), "cifar10": None}
    found = gpu_check.find_data(None, carry, stash)
    assert found["cifar10"] == (stash / "data").resolve()
    assert gpu_check.find_data(tmp_path / "empty", carry, stash) == {"mnist": None, "cifar10": None}


@pytest.fixture
def fake_weights(tmp_path, monkeypatch):
    """A small stand-in for the Inception weights file, as the installed one."""
    weights = tmp_path / "installed" / gpu_check.INCEPTION_FILE
    weights.parent.mkdir()
    weights.write_bytes(os.urandom(10_000))
    monkeypatch.setattr(gpu_check, "installed_inception_file", lambda: weights)
    return weights


def test_prepare_lays_out_what_travels_and_run_joins_the_weights_back(tmp_path, fake_weights, monkeypatch):
    data = fake_data(tmp_path / "data")
    carry = tmp_path / "carry"
    args = gpu_check.parse_args(["prepare", "--carry", str(carry), "--data", str(data), "--part-bytes", "3000"])
    assert gpu_check.prepare(args) == 0
    for name in gpu_check.SITE_PACKAGES:  # the pure-Python packages the GPU machine lacks
        assert (carry / "site" / name / "__init__.py").is_file()
    assert (carry / "data" / gpu_check.CIFAR_ARCHIVE).read_bytes() == b"y"
    pieces = sorted((carry / "inception").glob("*.part*"))
    assert len(pieces) == 4 and sum(p.stat().st_size for p in pieces) == 10_000

    monkeypatch.setattr(gpu_check, "installed_inception_file", lambda: None)  # the GPU machine
    stash = tmp_path / "stash"
    (stash / "inception").mkdir(parents=True)
    pieces[0].rename(stash / "inception" / pieces[0].name)  # carried and stashed by an earlier call
    how, folder = gpu_check.inception_weights([carry, stash], tmp_path / "work")
    assert how == "joined from 4 pieces (SHA-256 checked)"
    joined = folder / gpu_check.INCEPTION_PACKAGE / gpu_check.INCEPTION_FILE
    assert joined.read_bytes() == fake_weights.read_bytes()

    (stash / "inception" / pieces[0].name).write_bytes(b"changed")
    how, folder = gpu_check.inception_weights([carry, stash], tmp_path / "work2")
    assert "do not match their SHA-256" in how and folder is None
    (stash / "inception" / pieces[0].name).unlink()
    how, folder = gpu_check.inception_weights([carry, stash], tmp_path / "work3")
    assert how.startswith("3 of the 4 pieces found") and folder is None


def test_stash_copies_what_a_call_carried(tmp_path):
    carry, stash = tmp_path / "carry", tmp_path / "stash"
    (carry / "inception").mkdir(parents=True)
    (carry / "inception" / "default_1.pt.part0").write_bytes(b"abc")
    args = gpu_check.parse_args(["stash", "--carry", str(carry), "--stash", str(stash)])
    assert gpu_check.stash(args) == 0
    assert hashlib.sha256((stash / "inception" / "default_1.pt.part0").read_bytes()).hexdigest() == (
        hashlib.sha256(b"abc").hexdigest()
    )


# --- whole runs ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_parts_without_their_data_or_a_gpu_are_skipped_with_the_reason(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    _, report = run_script(
        tmp_path, "--budget", "60", "--data", str(empty), "--parts", "cifar_gan_resnet", "ssaae_mnist", "nccl"
    )
    parts = report["parts"]
    assert list(parts) == ["cifar_gan_resnet", "ssaae_mnist", "nccl"]
    assert all(p["status"] == "skipped" for p in parts.values())
    assert parts["cifar_gan_resnet"]["reason"].startswith("CIFAR-10 not found")
    assert parts["ssaae_mnist"]["reason"].startswith("MNIST not found")
    if not report["environment"]["cuda_available"]:
        assert parts["nccl"]["reason"] == "no CUDA device: nccl runs on GPUs"


@pytest.mark.slow
def test_a_smoke_run_on_the_cpu_measures_every_part_it_can(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    done, report = run_script(tmp_path, "--smoke", "--budget", "50", "--device", "cpu", "--data", str(empty))
    assert report["schema"] == gpu_check.SCHEMA and report["smoke"] is True and report["wall_s"] > 0
    env = report["environment"]
    for key in ("python", "torch", "torch_cuda", "cudnn", "nccl_available", "device", "setup", "data", "packages"):
        assert key in env
    assert env["device"] == "cpu" and env["setup"]["site_packages"] == "installed"
    assert env["data"] == {"mnist": None, "cifar10": None}
    parts = report["parts"]
    assert list(parts) == gpu_check.PART_NAMES
    for name, part in parts.items():
        assert part["status"] in ("ok", "skipped", "error") and part["seconds"] >= 0, name
        assert part["status"] != "error", f"{name}: {part.get('error')}\n{part.get('traceback', '')}"

    rows = parts["family_steps"]["rows"]
    assert {(r["family"], r["amp"], r["channels_last"]) for r in rows} == {
        (name, "off", layout) for name in family_names() for layout in (False, True)
    }
    assert all(r["images_per_s"] > 0 and r["steps"] >= 2 for r in rows), rows
    assert "need CUDA" in parts["family_steps"]["note"]

    comparisons = parts["runner_vs_plain"]["rows"]
    assert {(r["model"], r["size"]) for r in comparisons} == {("vae", 28), ("vae", 32), ("gan", 28), ("gan", 32)}
    assert all(r["runner"] > 0 and r["plain"] > 0 and r["ratio"] > 0 for r in comparisons)

    for name in ("cifar_gan_conv", "cifar_gan_resnet"):
        gan = parts[name]
        assert gan["status"] == "ok" and gan["exit_code"] == 3 and gan["steps"] >= 1, gan  # stopped by SIGTERM
        assert gan["images_per_s"] > 0 and gan["train_images"] == 512
    conv, resnet = parts["cifar_gan_conv"], parts["cifar_gan_resnet"]
    if gpu_check.installed_inception_file() is not None:
        assert math.isfinite(conv["inception_fid"]) and conv["inception_fid"] > 0
        assert conv["eval"]["metric_counts"]["inception_fid"]["samples"] == 8
        assert resnet["inception_fid_skipped"].startswith("--smoke: the Inception FID runs once")
    else:
        assert "not installed" in conv["inception_fid_skipped"] and "not installed" in resnet["inception_fid_skipped"]
    assert "model.net.arch=resnet" in resnet["overrides"]

    ssaae = parts["ssaae_mnist"]
    assert ssaae["status"] == "ok" and ssaae["steps"] >= 1 and ssaae["epochs"] > 0
    assert 0.0 <= ssaae["classifier_error"] <= 1.0

    assert parts["nccl"] == {**parts["nccl"], "status": "skipped", "reason": "no CUDA device: nccl runs on GPUs"}
    assert "gpu_check: no GPU" in done.stdout  # the summary printed last
