"""``resume=<run>`` brings the run's own overrides (vaegan_runner/config/resume_overrides.py)."""

from __future__ import annotations

import pytest

from runner_utils import FAST, run_cli
from vaegan_runner.config.resume_overrides import with_run_settings
from vaegan_runner.training.checkpoint import list_checkpoints


def recorded(run_dir, overrides):
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "step_00000010.pt").write_bytes(b"")
    return run_dir


def test_the_runs_own_overrides_come_first_and_the_command_line_wins(tmp_path):
    run = recorded(tmp_path / "run", ["model=vaegan", "dataset=mnist", "model.gamma=0.1", "trainer.max_epochs=3"])
    args = [f"resume={run}", "trainer.max_epochs=20", "+model.gamma=0.2"]
    assert with_run_settings(args) == ["model=vaegan", "dataset=mnist", *args]


def test_a_checkpoint_file_finds_its_run(tmp_path):
    run = recorded(tmp_path / "run", ["model=gan", "dataset=shapes"])
    args = [f"resume={run / 'checkpoints' / 'step_00000010.pt'}", "--cfg", "job"]
    assert with_run_settings(args) == ["model=gan", "dataset=shapes", *args]


def test_the_old_resume_and_hydra_settings_stay_behind(tmp_path):
    run = recorded(tmp_path / "run", ["model=gan", "resume=auto", "hydra.job.chdir=false", "seed=3"])
    assert with_run_settings([f"resume={run}"]) == ["model=gan", "seed=3", f"resume={run}"]


@pytest.mark.parametrize("target", ["auto", "null", "missing/run"])
def test_nothing_to_read_leaves_the_command_line_alone(tmp_path, target):
    args = [f"resume={target}", "model=gan"]
    assert with_run_settings(args) == args
    bare = tmp_path / "no-record"
    bare.mkdir()
    assert with_run_settings([f"resume={bare}"]) == [f"resume={bare}"]
    assert with_run_settings(["model=gan"]) == ["model=gan"]


@pytest.mark.slow
def test_resume_with_only_the_run_continues_that_run(tmp_path):
    """A user's first resume: the path and a longer run, not the run's model and dataset again."""
    run = tmp_path / "outputs" / "gan-run"
    # small networks and a small evaluation, which the resumed runs inherit with the run's settings
    first = run_cli(["model=gan", *FAST, "trainer.max_steps=6", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_cli([f"resume={run}", "trainer.max_steps=12"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [p.name for p in list_checkpoints(run / "checkpoints")][-1] == "step_00000012.pt"
    said = again.stdout + again.stderr
    assert "at step 6" in said and "settings the checkpoint was not trained with" not in said
    # an override the run's model has (the GAN's loss) is taken; the default VAE has none
    longer = run_cli([f"resume={run}", "trainer.max_steps=14", "model.loss=nonsaturating"], cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr[-2000:]
