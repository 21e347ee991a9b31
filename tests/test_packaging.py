"""A non-editable install (a wheel) carries the config tree and runs from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

from runner_utils import FAST, REPO


def test_every_config_folder_is_a_listed_package():
    """setuptools ships a folder's YAML files as package data only when the folder is in
    ``packages`` (and warns once per folder otherwise), so a new config group must be added."""
    packages = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {f.parent for f in (REPO / "configs").rglob("*.yaml")}
    wanted = {".".join(["vaegan_runner.configs", *f.relative_to(REPO / "configs").parts]) for f in folders}
    assert wanted <= packages, sorted(wanted - packages)


@pytest.mark.slow  # builds a wheel and installs it
def test_wheel_ships_configs_and_trains_from_another_directory(tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("vaegan_runner-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for config in (REPO / "configs").rglob("*.yaml"):  # every group's every option
        assert f"vaegan_runner/configs/{config.relative_to(REPO / 'configs').as_posix()}" in names, config
    assert "hydra_plugins/vaegan_runner_search_path/__init__.py" in names  # found by Hydra's plugin scan
    assert "hydra_plugins/__init__.py" not in names  # a namespace package, shared with other plugins

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaegan_runner.train",
            *FAST,
            "trainer.max_steps=4",
            "log.every_n_steps=2",
            "eval.every_n_steps=100",
            "checkpoint.every_n_steps=100",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((work / "outputs" / "vae-shapes").glob("*/samples.png"))
    probe = subprocess.run(
        [sys.executable, "-c", "import vaegan_runner.train as t; print(t.config_dir())"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "pkg://vaegan_runner.configs"
