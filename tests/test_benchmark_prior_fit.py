"""scripts/benchmark_prior_fit.py: its table, and that a run with its reports is not evaluated again."""

import importlib.util
import json

import pytest

from runner_utils import REPO
from vaegan_runner.config.checks import ConfigError

spec = importlib.util.spec_from_file_location("benchmark_prior_fit", REPO / "scripts" / "benchmark_prior_fit.py")
benchmark_prior_fit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_prior_fit)


def report(fid, recall, recon=None):
    metrics = {"domain_fid": fid, "precision": 0.5, "recall": recall}
    return {"model": "vae", "dataset": "mnist", "metrics": metrics | ({"recon_fid": recon} if recon else {})}


def test_the_table_has_mean_and_sd_over_runs_per_prior():
    rows = {
        "vae": [(report(350.0, 0.1, 150.0), report(200.0, 0.02)), (report(360.0, 0.12, 170.0), report(210.0, 0.04))]
    }
    lines = benchmark_prior_fit.table(rows, 10).splitlines()
    assert "domain FID, GMM-10" in lines[0]
    assert lines[2] == "| vae | 2 | 355.0 ± 7.1 | 205.0 ± 7.1 | 0.110 ± 0.014 | 0.030 ± 0.014 | 160.0 ± 14.1 |"


def test_a_report_is_reused_only_for_the_newest_checkpoint(tmp_path):
    """A run with its report is not evaluated again; once resumed (a newer checkpoint) it is."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_00000010.pt").write_bytes(b"")
    saved = {**report(1.0, 0.5, 2.0), "checkpoint": str(tmp_path / "checkpoints" / "step_00000010.pt")}
    (tmp_path / "eval_prior_fit_gmm10.json").write_text(json.dumps(saved))
    assert benchmark_prior_fit.evaluate(tmp_path, "gmm", 10) == saved  # not a real checkpoint: loading would fail
    (tmp_path / "checkpoints" / "step_00000020.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="step_00000020.pt"):  # evaluated again: it loads the new one
        benchmark_prior_fit.evaluate(tmp_path, "gmm", 10)
