"""The run directory: one probe per process, and clean-up that removes only what the runner made."""

from __future__ import annotations

import multiprocessing

import pytest

from runner_utils import FAST, run_cli
from vaegan_runner.config.run_dir import unwritable_dir_error

BAD = [*FAST, "trainer.batch_size=0"]  # a config error: the run ends before any work


def _probe_many(folder: str, times: int) -> list[str]:
    errors = []
    for _ in range(times):
        error = unwritable_dir_error(folder, "hydra.run.dir")
        if error is not None:
            errors.append(str(error))
    return errors


def test_two_processes_probing_one_folder_never_fail(tmp_path):
    # torchrun's ranks reach the same run directory at the same moment
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_probe_many, [(str(tmp_path / "run"), 300)] * 2)
    assert results == [[], []]
    assert list((tmp_path / "run").iterdir()) == []  # no probe file left behind


@pytest.mark.slow
def test_config_error_keeps_the_users_own_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    result = run_cli([*BAD, f"hydra.run.dir={mine}"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "trainer.batch_size" in result.stderr
    assert mine.is_dir()


@pytest.mark.slow
def test_config_error_removes_its_run_dir_but_not_the_working_directory(tmp_path):
    cwd = tmp_path / "empty"
    cwd.mkdir()
    result = run_cli([*BAD, "hydra.run.dir=run2"], cwd)
    assert result.returncode == 2, result.stderr
    assert cwd.is_dir() and list(cwd.iterdir()) == []


@pytest.mark.slow
def test_config_error_removes_the_default_run_dir_and_its_empty_parents(tmp_path):
    result = run_cli(BAD, tmp_path)
    assert result.returncode == 2, result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_config_error_keeps_an_outputs_folder_that_was_there(tmp_path):
    (tmp_path / "outputs").mkdir()
    result = run_cli(BAD, tmp_path)
    assert result.returncode == 2, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]
    assert list((tmp_path / "outputs").iterdir()) == []


def test_a_run_that_wrote_nothing_is_removed_with_its_lock_file(tmp_path, monkeypatch):
    """A config error in a folder this command made: Hydra's record and the run's own lock file
    (config/run_lock.py, still held while the run ends) are bookkeeping, not results."""
    from vaegan_runner.config.run_dir import CREATED, make_dir, remove_if_empty_run
    from vaegan_runner.config.run_lock import LOCK_NAME, hold, release

    monkeypatch.delenv(CREATED, raising=False)
    run = tmp_path / "outputs" / "run"
    make_dir(run)
    (run / ".hydra").mkdir()
    assert hold(run, "hydra.run.dir")
    remove_if_empty_run(run)
    release(run)  # the folder is gone: nothing left to remove
    assert not run.exists() and not (tmp_path / "outputs").exists()
    make_dir(run)
    (run / "metrics.json").write_text("{}")
    (run / LOCK_NAME).write_text("")
    remove_if_empty_run(run)
    assert (run / "metrics.json").is_file()  # a result: kept
