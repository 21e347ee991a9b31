"""Sweeps from the command line: parallel jobs (joblib), cluster jobs (submitit) and Optuna searches.

Needs the launcher and sweeper plugins: pip install -e ".[sweeps]" (the test extra has them).
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from runner_utils import CONFIGS, FAST, run_cli

# A few steps and one cheap final metric (the IWAE bound on 128 held-out images, k=4).
TINY = [
    *FAST,
    "model=vae",
    "trainer.max_steps=4",
    "log.every_n_steps=2",
    "eval.every_n_steps=1000",
    "checkpoint.every_n_steps=1000",
    "eval.metrics=[]",
    "eval.final_metrics=[iwae]",
]
VALUE = "final/iwae_nll"


def plugin(name: str) -> None:
    pytest.importorskip(f"hydra_plugins.{name}", reason=f'{name} is not installed (pip install -e ".[sweeps]")')


def job_dirs(tmp_path):
    sweeps = [p for p in (tmp_path / "outputs" / "multirun").iterdir() if p.is_dir()]
    assert len(sweeps) == 1, sweeps
    return sweeps[0], sorted(p for p in sweeps[0].iterdir() if p.is_dir() and not p.name.startswith("."))


def job_span(job) -> tuple[float, float]:
    """When a job started (Hydra writes .hydra/config.yaml first) and ended (metrics.json last)."""
    return (job / ".hydra" / "config.yaml").stat().st_mtime, (job / "metrics.json").stat().st_mtime


@pytest.mark.slow
def test_joblib_with_no_jobs_side_by_side_is_refused_before_any_job(tmp_path):
    plugin("hydra_joblib_launcher")
    result = run_cli(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "optimizer.lr=1e-3,1e-4", *TINY], tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "hydra.launcher.n_jobs: 0 runs no job" in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_joblib_launcher_runs_the_jobs_side_by_side(tmp_path):
    plugin("hydra_joblib_launcher")
    result = run_cli(
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "optimizer.lr=1e-3,1e-4",
            *TINY,
            "eval.optimized_metric=iwae_nll",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, jobs = job_dirs(tmp_path)
    # Named by the swept key: the sweep_subdir resolver works in joblib's worker processes.
    assert [j.name for j in jobs] == ["optimizer.lr=0.0001", "optimizer.lr=0.001"]
    for job in jobs:
        assert (job / "samples.png").is_file()
        assert VALUE in json.loads((job / "metrics.json").read_text())
    # Two worker processes (the event file names end in .<pid>.<n>), and the jobs overlap in time.
    pids = {p.name.split(".")[-2] for job in jobs for p in job.glob("events.out.tfevents.*")}
    assert len(pids) == 2, pids
    (start_a, end_a), (start_b, end_b) = (job_span(job) for job in jobs)
    assert start_a < end_b and start_b < end_a, "the two jobs ran one after the other"


@pytest.mark.slow
def test_an_optuna_trial_that_fails_is_counted_as_failed_and_the_search_goes_on(tmp_path):
    plugin("hydra_optuna_sweeper")
    fixed = ["model.latent_dim=choice(8)", "model.beta=choice(1.0)", "model.kl_warmup_steps=choice(0)"]
    search = ["-m", "hparams_search=vae_optuna", "hydra.sweeper.n_trials=4", "optimizer.lr=choice(1e-3,-1)"]
    result = run_cli([*search, *fixed, "model.prior=choice(gaussian)", *TINY], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    said = result.stdout + result.stderr  # Hydra's log lines go to stdout
    assert "Traceback" not in said and "Values were told" not in said
    assert "Failed experiment:" in said and "failed (exit 2): vaegan-train: error: optimizer.lr: must be > 0" in said
    failed = re.findall(r"^job (\d+) \(optimizer.lr=-1 ", result.stderr, re.M)
    assert failed and f"vaegan-train: {len(failed)} of the sweep's jobs failed" in result.stderr
    sweep, jobs = job_dirs(tmp_path)
    assert len(jobs) == 4 - len(failed)  # the failed trials left no run folder
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_params"]["optimizer.lr"] == 1e-3 and best["best_value"] > 0


@pytest.mark.slow
def test_optuna_search_minimises_the_returned_metric(tmp_path):
    plugin("hydra_optuna_sweeper")
    result = run_cli(["hparams_search=vae_optuna", "hydra.sweeper.n_trials=3", *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # Optuna imports alembic, whose INFO "setup plugin alembic.autogenerate.schemas" (7 lines) Hydra's
    # log showed: silenced in configs/hydra/default.yaml (hydra_logging), and only those
    said = result.stdout + result.stderr
    assert "setup plugin" not in said and "alembic" not in said
    assert "[HYDRA] Study name: " in said and "[HYDRA] Best value: " in said
    sweep, jobs = job_dirs(tmp_path)
    assert [j.name for j in jobs] == ["job0", "job1", "job2"]
    values = [json.loads((job / "metrics.json").read_text())[VALUE] for job in jobs]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(values), rel=1e-12)
    assert set(best["best_params"]) == {
        "optimizer.lr",
        "model.latent_dim",
        "model.beta",
        "model.kl_warmup_steps",
        "model.prior",
    }
    # The winning trial's settings are the ones its job ran with.
    winner = jobs[values.index(min(values))]
    overrides = yaml.safe_load((winner / ".hydra" / "overrides.yaml").read_text())
    for key, value in best["best_params"].items():
        assert f"{key}={value}" in overrides


@pytest.mark.slow
def test_submitit_local_launcher_runs_every_job(tmp_path):
    plugin("hydra_submitit_launcher")
    result = run_cli(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "optimizer.lr=1e-3,1e-4",
            *TINY,
            "eval.optimized_metric=iwae_nll",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep, jobs = job_dirs(tmp_path)
    # named by the swept key, although the jobs run under submitit's own command line
    assert [j.name for j in jobs] == ["optimizer.lr=0.0001", "optimizer.lr=0.001"]
    for job in jobs:
        assert VALUE in json.loads((job / "metrics.json").read_text())
    assert (sweep / ".submitit").is_dir()


@pytest.mark.slow
def test_a_failed_job_does_not_stop_the_other_jobs(tmp_path):
    """lr=1e30 diverges at once; the sweep still runs the lr=1e-3 job, then exits non-zero."""
    result = run_cli(["-m", "optimizer.lr=1e30,1e-3", *TINY, "eval.optimized_metric=iwae_nll"], cwd=tmp_path)
    assert result.returncode != 0
    assert "diverged: non-finite" in result.stdout + result.stderr
    _, jobs = job_dirs(tmp_path)
    assert [j.name for j in jobs] == ["optimizer.lr=0.001", "optimizer.lr=1e+30"]
    assert VALUE in json.loads((jobs[0] / "metrics.json").read_text())
    assert not (jobs[1] / "metrics.json").exists()  # its curves are kept to see what happened, no result


def test_slurm_config_asks_for_a_gpu_and_sigterm_before_the_time_limit(tmp_path, monkeypatch):
    """Render the sbatch script that hydra/launcher=slurm would submit (no cluster needed)."""
    plugin("hydra_submitit_launcher")
    import submitit
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            return_hydra_config=True,
            overrides=["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}", "hydra.launcher.partition=gpu"],
        )
    launcher = instantiate(cfg.hydra.launcher)
    executors = []
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", lambda self, *args: executors.append(self) or [])
    launcher.setup(hydra_context=None, task_function=lambda _: 0.0, config=cfg)
    launcher.launch([["model=vae"], ["model=gan"]], initial_job_idx=0)
    sbatch = executors[0]._executor._make_submission_file_text("python -u -m submitit.core._submit x", "0")
    flags = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)$", sbatch, re.M))
    assert flags["signal"] == "TERM@300"  # the runner checkpoints on SIGTERM; USR2 would end it without one
    assert flags["gpus-per-node"] == "1" and flags["ntasks-per-node"] == "1" and flags["cpus-per-task"] == "8"
    assert flags["time"] == "720" and flags["mem"] == "32GB" and flags["partition"] == "gpu"
    assert "USR2" not in sbatch


SEARCHES = sorted(p.stem for p in (CONFIGS / "hparams_search").glob("*_optuna.yaml"))


def search_values(spec: str) -> list[str]:
    """The values a search-space line can take at its ends: every choice, or an interval's bounds."""
    inner = re.search(r"(choice|interval)\(([^()]*)\)", spec)
    assert inner, spec
    return [v.strip() for v in inner.group(2).split(",")]


@pytest.mark.parametrize("search", SEARCHES)
def test_each_search_names_an_existing_family(search):
    """A family may have an Optuna search (``hparams_search/<family>_optuna.yaml``) or not;
    each one that exists names a family that exists."""
    from vaegan_runner.models import family_names

    defaults = yaml.safe_load((CONFIGS / "hparams_search" / f"{search}.yaml").read_text())["defaults"]
    assert defaults[0]["override /model"] in family_names()


@pytest.mark.parametrize("search", SEARCHES)
def test_every_point_of_each_search_space_is_a_valid_config(search):
    """Each end of each searched range, set alone, composes and validates for the search's
    family: a typo'd key or an impossible value fails here, not in trial 7 of a long search."""
    from runner_utils import compose_config
    from vaegan_runner.run_schema import validate

    spec = yaml.safe_load((CONFIGS / "hparams_search" / f"{search}.yaml").read_text())
    model = next(iter(spec["defaults"][0].values()))
    params = spec["hydra"]["sweeper"]["params"]
    assert params and spec["hydra"]["sweeper"]["direction"] == "minimize"
    for key, line in params.items():
        for value in search_values(str(line)):
            run = validate(compose_config([f"model={model}", *FAST, "trainer.max_steps=1", f"{key}={value}"]))
            assert run.model.name == model, (key, value)
