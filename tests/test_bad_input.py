"""The bad-input catalogue (issue "Runs that survive").

Every way of handing the runner something it cannot use ends with a short message that names
what is wrong and what to do, a non-zero exit code (2 for input errors, 1 where Hydra itself
refuses an unknown group option), no Python traceback, and no half-written result. Wherever the
config alone decides, the check runs before any data is loaded or network built; the in-process
tests prove that by making ``load_data`` and ``build_family`` fail if they are ever called.

Covered elsewhere, not repeated here:
  tests/test_config.py       validate() naming the key for optimizer.lr=-1, trainer.batch_size=0,
                             dataset.image_size=30 (with the allowed sizes), trainer.max_steps=abc and
                             unknown keys; the CLI for model=nope, optimizer.lr=-1, image_size=30,
                             trainer.colour=1; missing MNIST with dataset.download=false via the CLI.
  tests/test_data.py         the loaders: mnist/fashion_mnist channels=3, cifar10 channels=1, shapes
                             channels=2, missing MNIST/CIFAR files, image folders that are missing, empty
                             or hold no images, one corrupt file left out with one warning, a file that
                             breaks after listing.
  tests/test_reliability.py  truncated and corrupt checkpoints (the newest skipped with a warning; one
                             named directly is exit 2).
"""

from __future__ import annotations

import ast
import errno
import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vaegan_runner.data
import vaegan_runner.train
from runner_utils import CONFIGS, FAST, REPO, compose_config, run_cli
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.run_schema import validate
from vaegan_runner.training.checkpoint import list_checkpoints, load_checkpoint
from vaegan_runner.training.resume_check import check_resumable

# FAST plus: 2 steps, no sample metrics (domain_fid would train a classifier), images and evaluations off.
QUICK = [
    *FAST,
    "eval.metrics=[]",
    "eval.final_metrics=[recon_mse]",
    "eval.optimized_metric=recon_mse",
    "log.image_every_n_steps=1000",
    "eval.every_n_steps=1000",
    "eval.final_max_images=64",
    "trainer.max_steps=2",
]


# --- helpers ---------------------------------------------------------------------------------------


def run_module(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` in ``cwd`` with the source tree importable (vaegan-eval, vaegan-sample)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def assert_refused(result: subprocess.CompletedProcess, code: int, *words: str, cwd: Path | None = None) -> None:
    """Exit ``code``, every word in stderr, no traceback; with ``cwd``: no outputs/ and no *.tmp left."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    for word in words:
        assert word in result.stderr, (word, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if cwd is not None:
        assert not (cwd / "outputs").exists(), sorted(map(str, (cwd / "outputs").rglob("*")))
        assert not list(cwd.rglob("*.tmp"))


@pytest.fixture
def no_data(monkeypatch):
    """Make loading data or building the family fail the test: a check that needs neither must
    have refused the config before them."""

    def forbidden(*args, **kwargs):
        raise AssertionError("data was loaded or a model built before the bad input was refused")

    monkeypatch.setattr(vaegan_runner.data, "load_data", forbidden)
    monkeypatch.setattr(vaegan_runner.train, "build_family", forbidden)


def quick(*overrides: str) -> list[str]:
    """QUICK then ``overrides``, without QUICK's shapes keys when they pick another dataset."""
    other = any(o.startswith("dataset=") and o != "dataset=shapes" for o in overrides)
    return [o for o in QUICK if not (other and o.startswith("dataset"))] + list(overrides)


def refused_in_process(overrides: list[str], run_dir: Path) -> ConfigError:
    """The ConfigError that ``train.run`` raises for ``quick(*overrides)``; the run directory is
    never made."""
    with pytest.raises(ConfigError) as err:
        vaegan_runner.train.run(compose_config(quick(*overrides)), run_dir)
    assert not run_dir.exists()
    return err.value


def save_png(path: Path, seed: int, size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


# --- 1. unknown model, dataset or optimizer names -------------------------------------------------


@pytest.mark.parametrize("group", ["model", "dataset", "optimizer"])
@pytest.mark.slow
def test_unknown_group_option_lists_the_choices(tmp_path, group):
    result = run_cli([f"{group}=nope"], cwd=tmp_path, timeout=120)
    choices = sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))
    assert_refused(
        result, 2, f"there is no {group} config named 'nope'", f"The choices of {group} are", *choices, cwd=tmp_path
    )  # refused before Hydra runs (config/override_keys.py)
    assert "search path" not in result.stderr


# --- 2.-4. wrong types and values, impossible image sizes, channels that disagree with the data ---


@pytest.mark.parametrize(
    "overrides,key,words",
    [
        (["trainer.batch_size=abc"], "trainer.batch_size", ["'abc'", "Integer", "whole number"]),
        (["optimizer.lr=fast"], "optimizer.lr", ["'fast'", "Float", "set optimizer.lr to a number"]),
        (["trainer.deterministic=maybe"], "trainer.deterministic", ["'maybe'", "true or false"]),
        (["optimizer.lr=0"], "optimizer.lr", ["must be > 0", "0.0"]),
        (["optimizer.lr=-0.001"], "optimizer.lr", ["must be > 0"]),
        (["optimizer.discriminator.lr=0", "model=gan"], "optimizer.discriminator.lr", ["must be > 0"]),
        (["trainer.batch_size=-3"], "trainer.batch_size", ["must be > 0"]),
        (["dataset.image_size=30"], "dataset.image_size", ["16, 28, 32, 56, 64, 112, 128, 224", "model.net.arch=mlp"]),
        (["model=gan", "dataset.image_size=100"], "dataset.image_size", ["100 cannot be made", "allowed sizes"]),
        (["dataset=mnist", "dataset.channels=3"], "dataset.channels", ["mnist has 1 channel", "got 3"]),
        (["dataset=fashion_mnist", "dataset.channels=3"], "dataset.channels", ["1 channel"]),
        (["dataset=cifar10", "dataset.channels=1"], "dataset.channels", ["cifar10 has 3 channels"]),
        (["dataset.channels=2"], "dataset.channels", ["got 2", "allowed: 1, 3"]),
        (["dataset=image_folder", "dataset.path=.", "dataset.channels=2"], "dataset.channels", ["allowed: 1, 3"]),
        (["dataset=image_folder", "dataset.path=.", "dataset.channels=4"], "dataset.channels", ["allowed: 1, 3"]),
        # optimizer settings that torch refuses, or takes and diverges with (issue 32)
        (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer.momentum", ["must be in [0, 1)", "-1.0"]),
        (["optimizer=sgd", "optimizer.momentum=1"], "optimizer.momentum", ["must be in [0, 1)"]),
        (
            ["optimizer=sgd", "optimizer.momentum=0", "optimizer.nesterov=true"],
            "optimizer.nesterov",
            ["needs optimizer.momentum > 0", "optimizer.nesterov=false"],
        ),
        (["optimizer.eps=-1"], "optimizer.eps", ["must be > 0", "-1.0"]),
        (["optimizer.eps=0"], "optimizer.eps", ["must be > 0"]),
        (["optimizer=rmsprop", "optimizer.alpha=2"], "optimizer.alpha", ["must be in (0, 1)", "diverges", "2.0"]),
        (["optimizer.lr=inf"], "optimizer.lr", ["finite"]),
        (["model=gan", "optimizer.generator.lr=nan"], "optimizer.generator.lr", ["finite"]),
        # seeds every generator takes: 0 .. 2**63 - 1
        (["seed=99999999999999999999"], "seed", ["from 0 to 2**63 - 1", "99999999999999999999"]),
        (["seed=9223372036854775808"], "seed", ["from 0 to 2**63 - 1"]),
        (["seed=-1"], "seed", ["from 0 to 2**63 - 1", "got -1"]),
        (["dataset.seed=99999999999999999999"], "dataset.seed", ["from 0 to 2**63 - 1"]),
        # a true/false key given a number other than 0 or 1 (OmegaConf reads any number as a bool)
        (["checkpoint.keep_best=2"], "checkpoint.keep_best", ["must be true or false, got 2"]),
        (["trainer.deterministic=-1"], "trainer.deterministic", ["must be true or false, got -1"]),
        (["checkpoint.keep_best='2'"], "checkpoint.keep_best", ["must be true or false, got '2'"]),
        (["model=gan", "model.discriminator.spectral_norm=3"], "model.discriminator.spectral_norm", ["got 3"]),
    ],
)
def test_bad_values_are_refused_before_any_data(tmp_path, no_data, overrides, key, words):
    err = refused_in_process(overrides, tmp_path / "run")
    assert err.key == key, str(err)
    for word in words:
        assert word in str(err), str(err)
    assert "\n" not in str(err)


@pytest.mark.parametrize("key", ["eval.cache_dir", "dataset.cache_dir"])
def test_a_cache_folder_that_is_a_file_is_refused_before_any_data(tmp_path, no_data, key):
    """A regular file where a cache folder belongs (VAEGAN_CACHE_DIR set to a file, say) would
    make every run retrain its domain classifier: refused, naming the key and the variable."""
    a_file = tmp_path / "cache"
    a_file.write_text("not a folder")
    err = refused_in_process([f"{key}={a_file}"], tmp_path / "run")
    assert err.key == key, str(err)
    assert f"{a_file} is a file, not a folder" in str(err) and "VAEGAN_CACHE_DIR" in str(err)
    assert "\n" not in str(err)


@pytest.mark.slow
def test_cli_wrong_type_exits_2(tmp_path):
    result = run_cli(["trainer.batch_size=abc"], cwd=tmp_path, timeout=120)
    assert_refused(result, 2, "vaegan-train: error: trainer.batch_size:", "'abc'", "whole number", cwd=tmp_path)


@pytest.mark.slow
def test_cli_channels_that_disagree_with_the_data_exit_2(tmp_path):
    result = run_cli(
        ["dataset=mnist", "dataset.channels=3", f"dataset.root={tmp_path / 'nodata'}"], cwd=tmp_path, timeout=120
    )
    assert_refused(result, 2, "dataset.channels", "mnist has 1 channel", cwd=tmp_path)
    assert "not found" not in result.stderr  # refused from the config, before it looked for the files
    assert not (tmp_path / "nodata").exists()


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer.momentum"),
        (["optimizer=sgd", "optimizer.momentum=0", "optimizer.nesterov=true"], "optimizer.nesterov"),
        (["optimizer.eps=-1"], "optimizer.eps"),
        (["optimizer=rmsprop", "optimizer.alpha=2"], "optimizer.alpha"),
        (["seed=99999999999999999999"], "seed"),
        (["checkpoint.keep_best=2"], "checkpoint.keep_best"),
    ],
)
@pytest.mark.slow
def test_cli_optimizer_seed_and_boolean_values_exit_2_before_any_work(tmp_path, overrides, key):
    """Each reached torch (a traceback, or a run that diverged at step 2) or was read as true."""
    result = run_cli(quick(*overrides), cwd=tmp_path, timeout=120)
    assert_refused(result, 2, f"vaegan-train: error: {key}:", cwd=tmp_path)


@pytest.mark.parametrize("alpha,allowed", [(0.0, False), (1e-3, True), (0.99, True), (1.0, False), (-0.5, False)])
def test_rmsprop_alpha_is_allowed_in_the_open_interval_0_1(alpha, allowed):
    cfg = compose_config(quick("optimizer=rmsprop", f"optimizer.alpha={alpha}"))
    if allowed:
        assert validate(cfg).optimizer.alpha == alpha
    else:
        with pytest.raises(ConfigError) as err:
            validate(cfg)
        assert err.value.key == "optimizer.alpha" and "must be in (0, 1)" in str(err.value)


def test_what_torch_itself_refuses_is_refused_before_any_work(monkeypatch):
    """Behind the range table, each optimizer is built once on one parameter: a setting the table
    lets through but torch refuses (here: the table emptied) is still a ConfigError, not a traceback."""
    monkeypatch.setattr("vaegan_runner.training.optim.RANGES", {})
    with pytest.raises(ConfigError) as err:
        validate(compose_config(quick("optimizer.eps=-1")))
    assert err.value.key == "optimizer" and "torch.optim refuses optimizer=adam" in str(err.value)
    assert "Invalid epsilon value: -1.0" in str(err.value)


def test_the_largest_seed_trains(tmp_path):
    """2**63 - 1 goes through every generator of a run (torch, numpy, the data's shuffling)."""
    results = vaegan_runner.train.run(
        compose_config(quick(f"seed={2**63 - 1}", f"dataset.seed={2**63 - 1}", "trainer.max_steps=1")),
        tmp_path / "run",
    )
    assert results["recon_mse"] >= 0


# --- 5. a dataset that is missing and cannot be downloaded -----------------------------------------
# download=false through the CLI: tests/test_config.py::test_cli_missing_mnist_offline_is_one_clear_error.


def test_mnist_download_without_network_is_one_clear_error(tmp_path, monkeypatch):
    """No network, simulated by a mirror nobody listens on (connection refused at once)."""
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(vaegan_runner.train, "build_family", lambda *a: pytest.fail("model built"))
    root = tmp_path / "data"
    with pytest.raises(ConfigError) as err:
        vaegan_runner.train.run(
            compose_config(
                quick("dataset=mnist", f"dataset.root={root}", "dataset.download=true", "dataset.cache_dir=null")
            ),
            tmp_path / "run",
        )
    message = str(err.value)
    assert err.value.key == "dataset.root" and "\n" not in message
    for word in [
        "MNIST not found",
        str(root / "MNIST" / "raw"),
        "the download failed",
        "127.0.0.1",
        "VAEGAN_DATA_DIR",
        "dataset=shapes",
    ]:
        assert word in message, message
    assert not root.exists(), "the failed download left empty folders behind"


def test_a_failed_cifar10_download_is_one_paragraph_and_leaves_no_folder(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    import vaegan_runner.train

    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    monkeypatch.setattr(vaegan_runner.train, "build_family", lambda *a: pytest.fail("model built"))
    root = tmp_path / "data"
    overrides = quick("dataset=cifar10", f"dataset.root={root}", "dataset.download=true", "dataset.cache_dir=null")
    with pytest.raises(ConfigError) as err:
        vaegan_runner.train.run(compose_config(overrides), tmp_path / "run")
    message = str(err.value)
    assert err.value.key == "dataset.root" and "\n" not in message
    assert "CIFAR-10 not found" in message and "the download failed" in message and ", or a JPEG copy" in message
    assert not root.exists(), "the failed download left empty folders behind"


# --- 6. image folders: corrupt files ----------------------------------------------------------------
# Missing, empty or image-less folders: tests/test_data.py::test_image_folder_without_images.


def test_image_folder_with_some_corrupt_files_trains_with_one_warning(tmp_path, caplog):
    folder = tmp_path / "images"
    for i in range(24):  # 8 held out: the reconstruction grid needs a row of 8 (see the next test)
        save_png(folder / f"{i}.png", i)
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (folder / "cut.jpg").write_bytes(b"\xff\xd8\xff")
    with caplog.at_level(logging.WARNING):
        results = vaegan_runner.train.run(
            compose_config(
                quick(
                    "dataset=image_folder",
                    f"dataset.path={folder}",
                    "dataset.image_size=16",
                    "dataset.channels=1",
                    "dataset.num_workers=0",
                    "dataset.val_fraction=0.34",
                    "trainer.batch_size=2",
                    "model=vae",
                )
            ),
            tmp_path / "run",
        )
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "unreadable" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert "left out 2 unreadable" in warnings[0] and "bad.png" in warnings[0] and "cut.jpg" in warnings[0]
    assert results["recon_mse"] >= 0 and (tmp_path / "run" / "metrics.json").is_file()


def test_a_held_out_split_smaller_than_a_grid_row_does_not_crash(tmp_path):
    results = vaegan_runner.train.run(compose_config(quick("dataset.n_test=4", "model=vae")), tmp_path / "run")
    assert results["recon_mse"] >= 0


@pytest.mark.parametrize("model", ["gan", "vae"])
def test_a_held_out_split_too_small_for_the_optimized_metric_is_refused_before_training(tmp_path, model, monkeypatch):
    monkeypatch.setattr(vaegan_runner.train, "build_family", lambda *a: pytest.fail("family built"))
    run_dir = tmp_path / "run"
    overrides = [
        f"model={model}",
        "dataset.n_test=1",
        "eval.optimized_metric=domain_fid",
        "eval.final_metrics=[domain_fid]",
    ]
    with pytest.raises(ConfigError) as caught:
        vaegan_runner.train.run(compose_config(quick(*overrides)), run_dir)
    err = caught.value
    assert not list(run_dir.rglob("*"))  # made (and probed) before the data could say; the CLI removes it
    assert err.key == "eval.optimized_metric" and "there are 1 held-out image;" in str(err)
    assert "at least 4 of each" in str(err) and "hold out more images: dataset.n_test" in str(err)


def test_metrics_that_need_more_held_out_images_are_skipped_with_the_reason(tmp_path):
    results = vaegan_runner.train.run(
        compose_config(
            quick(
                "dataset.n_test=2",
                "model=gan",
                "eval.final_metrics=[classifier_score,domain_fid]",
                "eval.optimized_metric=classifier_score",
            )
        ),
        tmp_path / "run",
    )
    assert "classifier_score" in results and "domain_fid" not in results
    skipped = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics_skipped"]
    assert skipped["domain_fid"] == (
        "there are 2 held-out images; comparing samples with held-out images needs at least 4 of each"
    )


@pytest.mark.slow
def test_a_multirun_of_config_errors_reports_each_job_in_one_line_and_leaves_nothing(tmp_path):
    result = run_cli(["-m", "model=vae,gan", "trainer.batch_size=0"], cwd=tmp_path, timeout=240)
    assert_refused(result, 2, "job 0 (model=vae trainer.batch_size=0)", "job 1 (model=gan", cwd=tmp_path)
    assert result.stderr.count("trainer.batch_size: must be > 0, got 0") >= 2


def flat_folder(root: Path, n: int = 12) -> Path:
    """An unlabelled image folder (no class sub-folders): the most common custom data."""
    for i in range(n):
        save_png(root / f"{i:02d}.png", i, size=16)
    return root


@pytest.mark.slow
def test_the_default_gan_command_finishes_on_an_unlabelled_folder(tmp_path):
    """No labels (no domain features), Inception off on the CPU, no encoder: auto finds nothing
    to optimize, says so before training, and the run finishes with exit 0 and its results."""
    folder = flat_folder(tmp_path / "images")
    args = ["dataset=image_folder", f"dataset.path={folder}", "dataset.image_size=16", "model=gan"]
    args += ["trainer.max_steps=3", "trainer.batch_size=4", "log.progress_bar=false", "hydra.run.dir=run"]
    result = run_cli(args, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "eval.optimized_metric=auto: nothing to optimize here (domain_fid: the dataset has no class labels" in said
    assert "; inception_fid: " in said and "; recon_mse: GAN has no encoder)" in said
    assert (tmp_path / "run" / "metrics.json").is_file() and not (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_an_unlabelled_folder_of_one_image_blames_the_labels_for_domain_fid(tmp_path, monkeypatch):
    """The first unmet need is the one to fix: no labels, before too few held-out images."""
    monkeypatch.setattr(vaegan_runner.train, "build_family", lambda *a: pytest.fail("family built"))
    folder = flat_folder(tmp_path / "images", n=6)
    overrides = ["dataset=image_folder", f"dataset.path={folder}", "dataset.image_size=16", "dataset.val_fraction=0.2"]
    overrides += ["model=gan", "eval.optimized_metric=domain_fid", "eval.final_metrics=[domain_fid]"]
    with pytest.raises(ConfigError) as caught:
        vaegan_runner.train.run(compose_config(quick(*overrides)), tmp_path / "run")
    message = str(caught.value)
    assert caught.value.key == "eval.optimized_metric" and "the dataset has no class labels" in message
    assert "held-out" not in message


@pytest.mark.parametrize(
    "overrides,words",
    [
        (
            ["eval.final_n_samples=3", "eval.final_metrics=[recon_mse,domain_fid]"],
            ["eval.final_n_samples: must be >= 4 for eval.final_metrics domain_fid"],
        ),
        (["eval.n_samples=2", "eval.metrics=[domain_fid]"], ["eval.n_samples: must be >= 4 for eval.metrics"]),
    ],
)
def test_too_few_samples_to_compare_is_refused_before_training(tmp_path, overrides, words):
    err = refused_in_process(["model=vae", *overrides], tmp_path / "run")
    assert all(word in str(err) for word in words), err


def test_few_samples_are_fine_for_metrics_that_compare_nothing(tmp_path):
    cfg = compose_config(
        quick("model=vae", "eval.final_n_samples=2", "eval.final_metrics=[recon_mse,classifier_score]")
    )
    vaegan_runner.train.run(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["final/classifier_score"] >= 1


@pytest.mark.parametrize(
    "model,labelled,expected", [("vae", False, "recon_mse"), ("aae", False, "recon_mse"), ("gan", True, "domain_fid")]
)
def test_auto_optimizes_the_best_value_the_data_allows(tmp_path, model, labelled, expected):
    from omegaconf import OmegaConf

    if labelled:
        overrides = quick(f"model={model}", "eval.final_metrics=[domain_fid,recon_mse]")
    else:
        folder = flat_folder(tmp_path / "images")
        overrides = quick(f"model={model}", "dataset=image_folder", f"dataset.path={folder}", "dataset.image_size=16")
        overrides += ["trainer.batch_size=4", "eval.final_metrics=[domain_fid,recon_mse]"]
    cfg = compose_config([*overrides, "eval.optimized_metric=auto"])
    results = vaegan_runner.train.run(cfg, tmp_path / "run")
    assert OmegaConf.select(cfg, "eval.optimized_metric") == expected and expected in results


def test_an_explicit_inception_fid_on_the_cpu_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(vaegan_runner.train, "build_family", lambda *a: pytest.fail("family built"))
    monkeypatch.setattr("vaegan_runner.metrics.evaluate.inception_installed", lambda: True)
    overrides = quick("model=gan", "eval.final_metrics=[inception_fid]", "eval.optimized_metric=inception_fid")
    with pytest.raises(ConfigError) as err:
        vaegan_runner.train.run(compose_config(overrides), tmp_path / "run")
    assert err.value.key == "eval.optimized_metric" and "eval.inception_on_cpu=true" in str(err.value)


@pytest.mark.slow
def test_cli_image_folder_with_only_corrupt_files_exits_2(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"not an image" * i)
    result = run_cli(
        ["dataset=image_folder", f"dataset.path={folder}", "dataset.image_size=16"], cwd=tmp_path, timeout=120
    )
    assert_refused(
        result,
        2,
        "dataset.path",
        "none of the 3 image files",
        "corrupt",
        "0.png",
        "point dataset.path at a folder",
        cwd=tmp_path,
    )


# --- 7. a checkpoint of another family, image size or architecture -------------------------------


@pytest.fixture(scope="session")  # session: kept when the tiers split this file
def vae_checkpoint(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("vae_run") / "run"
    vaegan_runner.train.run(compose_config([*QUICK, "model=vae", "trainer.max_steps=1"]), run_dir)
    (checkpoint,) = list_checkpoints(run_dir / "checkpoints")
    return checkpoint


def listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.slow
def test_cli_resume_from_another_family_names_both(tmp_path, vae_checkpoint):
    before = listing(vae_checkpoint.parent.parent)
    result = run_cli([*QUICK, "model=aae", "trainer.max_steps=2", f"resume={vae_checkpoint}"], cwd=tmp_path)
    assert_refused(result, 2, "vaegan-train: error: resume:", "model=vae", "model=aae", cwd=tmp_path)
    assert listing(vae_checkpoint.parent.parent) == before, "the refused resume wrote into the old run"


def test_resume_with_another_image_size_is_refused_before_any_data(tmp_path, no_data, vae_checkpoint):
    err = refused_in_process(["model=vae", "dataset.image_size=32", f"resume={vae_checkpoint}"], tmp_path / "run")
    assert err.key == "resume" and "image_size=28" in str(err) and "image_size=32" in str(err)


@pytest.mark.parametrize(
    "override,words",
    [
        ("dataset.channels=3", ["dataset.channels=1", "dataset.channels=3"]),
        ("model.net.width=16", ["do not fit", "model.net.width is 8 in the checkpoint and 16 here"]),
        ("model.net.norm=none", ["do not fit", "model.net.norm is 'batch' in the checkpoint and 'none' here"]),
    ],
)
def test_checkpoint_with_other_networks_is_refused_naming_both(vae_checkpoint, override, words):
    """``resume_check.check_resumable`` (what train.py should call: see the report) compares the
    weight shapes with the family the config builds, on the meta device, before any data."""
    state = load_checkpoint(vae_checkpoint)
    check_resumable(state, validate(compose_config([*QUICK, "model=vae", "trainer.max_steps=2"])))  # it fits
    with pytest.raises(ConfigError) as err:
        check_resumable(state, validate(compose_config([*QUICK, "model=vae", "trainer.max_steps=2", override])))
    assert err.value.key == "resume" and "fresh run" in str(err.value)
    for word in words:
        assert word in str(err.value), str(err.value)


# --- 8. a checkpoint that is a pickle which would run code -----------------------------------------
# Truncated and corrupt checkpoints: tests/test_reliability.py.


class _Payload:
    """Unpickling this calls Path.touch(marker): code run by merely loading the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.fixture
def malicious(tmp_path) -> tuple[Path, Path, Path]:
    """(torch.save zip file, plain pickle file, the marker either would create)."""
    marker = tmp_path / "PWNED"
    live = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(_Payload(live)))  # the payload is real: a plain unpickle runs it
    assert live.exists()
    state = {"family": _Payload(marker), "config": {}, "meta": {}, "step": 1}
    zipped, plain = tmp_path / "evil.pt", tmp_path / "evil.pkl"
    torch.save(state, zipped)
    plain.write_bytes(pickle.dumps(state))
    assert not marker.exists()
    return zipped, plain, marker


@pytest.mark.parametrize("command", ["vaegan-train", "vaegan-eval", "vaegan-sample"])
@pytest.mark.slow
def test_malicious_pickle_checkpoint_is_refused_without_running_it(tmp_path, malicious, command):
    zipped, _, marker = malicious
    work = tmp_path / "work"
    work.mkdir()
    if command == "vaegan-train":
        result = run_cli([*QUICK, "trainer.max_steps=2", f"resume={zipped}"], cwd=work)
    else:
        module = {"vaegan-eval": "vaegan_runner.cli.eval", "vaegan-sample": "vaegan_runner.cli.sample"}[command]
        result = run_module(module, [str(zipped)], cwd=work)
    assert_refused(
        result,
        2,
        f"{command}: error:",
        str(zipped),
        "not a readable vaegan-runner checkpoint",
        "can run any code",
        "vaegan-train",
        cwd=work,
    )
    assert not marker.exists(), "loading the checkpoint ran its code"


def test_malicious_plain_pickle_is_refused_without_running_it(malicious, no_data, tmp_path):
    _, plain, marker = malicious
    err = refused_in_process([f"resume={plain}"], tmp_path / "run")
    assert err.key == "resume" and "not a readable vaegan-runner checkpoint" in str(err) and "can run code" in str(err)
    assert not marker.exists()


def test_every_torch_load_in_the_package_is_weights_only():
    """Static: each ``torch.load(...)`` passes ``weights_only=True``, and nothing imports pickle."""
    calls, unpickles = [], []
    for path in sorted((REPO / "vaegan_runner").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                safe = any(
                    k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for k in node.keywords
                )
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", safe))
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib") for n in names):
                    unpickles.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert calls, "found no torch.load at all: the scan is broken"
    assert [where for where, safe in calls if not safe] == []
    assert unpickles == []


# --- 9. an output directory that cannot be written --------------------------------------------------

RUN_DIR_CHECK = "++hydra.callbacks.run_dir._target_=vaegan_runner.run_dir_check.RunDirCheck"


@pytest.mark.parametrize("mode", ["run", "multirun"])
@pytest.mark.slow
def test_run_dir_under_a_file_is_one_clear_error(tmp_path, mode):
    """Hydra makes the run directory before our code runs; the RunDirCheck callback refuses it
    first (without it Hydra prints a NotADirectoryError traceback and exits 1)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    key = "hydra.run.dir" if mode == "run" else "hydra.sweep.dir"
    args = (["-m", "model=vae,gan"] if mode == "multirun" else []) + [f"{key}={blocker / 'run'}", RUN_DIR_CHECK]
    result = run_cli(args, cwd=tmp_path, timeout=120)
    assert_refused(
        result,
        2,
        f"vaegan-train: error: {key}:",
        f"{blocker} is a file, not a folder",
        f"choose another with {key}=",
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_run_dir_under_a_file_with_the_default_config(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli([f"hydra.run.dir={blocker / 'run'}"], cwd=tmp_path, timeout=120)
    assert_refused(result, 2, "hydra.run.dir", "is a file, not a folder", cwd=tmp_path)


# --- 10. a full disk while saving a checkpoint --------------------------------------------------------


def test_full_disk_keeps_the_last_good_checkpoint_and_leaves_no_tmp(tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        if str(getattr(f, "name", f)).endswith(".pt.tmp"):
            calls.append(f.name)
            if len(calls) == 2:  # the second checkpoint: half written, then the disk is full
                f.write(b"PK\x03\x04 half a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        vaegan_runner.train.run(
            compose_config(
                [*QUICK, "model=vae", "trainer.max_steps=6", "checkpoint.every_n_steps=2", "checkpoint.keep_last=3"]
            ),
            run_dir,
        )
    message = str(err.value)
    assert err.value.key == "checkpoint" and len(calls) == 2
    assert "step_00000004.pt" in message and "No space left on device" in message
    assert "the last good checkpoint" in message and "step_00000002.pt is intact" in message
    assert "resume=auto" in message
    (kept,) = list_checkpoints(run_dir / "checkpoints")
    assert kept.name == "step_00000002.pt" and load_checkpoint(kept)["step"] == 2
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / "metrics.json").exists()


# --- 11. VAE-GAN's feature_layer out of range ----------------------------------------------------


@pytest.mark.parametrize(
    "overrides,words",
    [
        (
            ["model.feature_layer=7"],
            [
                "out of range at every image size",
                "2 blocks at image sizes 16 and 28",
                "5 blocks at image sizes 128 and 224",
            ],
        ),
        (["model.feature_layer=-6"], ["out of range at every image size"]),
        (
            ["model.net.arch=mlp", "model.net.hidden=[32,16]", "model.feature_layer=2"],
            ["D has 2 blocks", "model.net.hidden", "use 0..1, or -2..-1"],
        ),
    ],
)
def test_feature_layer_out_of_range_is_refused_before_any_data(tmp_path, no_data, overrides, words):
    err = refused_in_process(["model=vaegan", *overrides], tmp_path / "run")
    assert err.key == "model.feature_layer", str(err)
    for word in words:
        assert word in str(err), str(err)


def test_feature_layer_beyond_this_image_size_is_refused_before_any_data(tmp_path, monkeypatch):
    monkeypatch.setattr(vaegan_runner.data, "load_data", lambda *a: pytest.fail("data loaded"))
    err = refused_in_process(["model=vaegan", "model.feature_layer=2"], tmp_path / "run")
    assert err.key == "model.feature_layer" and "2 blocks at image size 28" in str(err)


@pytest.mark.slow
def test_cli_feature_layer_out_of_range_for_the_image_size_exits_2(tmp_path):
    result = run_cli([*QUICK, "model=vaegan", "model.feature_layer=2", "trainer.max_steps=1"], cwd=tmp_path)
    assert_refused(
        result,
        2,
        "vaegan-train: error: model.feature_layer:",
        "2 blocks at image size 28",
        "use 0..1",
        "larger dataset.image_size",
        cwd=tmp_path,
    )


# --- 12. startup cost ------------------------------------------------------------------------------


@pytest.mark.slow
def test_startup_does_not_import_torchvision(tmp_path):
    code = (
        "import sys, vaegan_runner.train, vaegan_runner.training.loop, vaegan_runner.run_schema, "
        "vaegan_runner.data; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_vaegan_eval_of_a_run_none_of_whose_metrics_can_run_is_an_error(tmp_path, capsys):
    """A GAN on an unlabelled folder: no domain features, no encoder, no Inception on the CPU;
    the run's own final metrics all skip, so vaegan-eval says so instead of writing {}."""
    from vaegan_runner.cli.eval import main as eval_main

    folder = flat_folder(tmp_path / "images")
    overrides = ["dataset=image_folder", f"dataset.path={folder}", "dataset.image_size=16", "model=gan"]
    overrides += ["trainer.max_steps=2", "trainer.batch_size=4", "eval.final_metrics=[domain_fid,recon_mse]"]
    overrides += ["eval.optimized_metric=auto", "dataset.num_workers=0"]
    vaegan_runner.train.run(compose_config(overrides), tmp_path / "run")
    capsys.readouterr()
    assert eval_main([str(tmp_path / "run"), "n_samples=8"]) == 2
    err = capsys.readouterr().err
    assert "none of the metrics of the run (eval.final_metrics) can be computed here" in err
    assert "domain_fid: the dataset has no class labels" in err and not list((tmp_path / "run").glob("eval_*.json"))
