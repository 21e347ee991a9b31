"""scripts/summarize_runs.py: a table of finished runs from their metrics.json, whichever runner
version wrote them, and one line (not a traceback) for a folder that is not there."""

from __future__ import annotations

import importlib.util
import json
import sys

from runner_utils import OLD_METRICS_JSON, REPO

spec = importlib.util.spec_from_file_location("summarize_runs", REPO / "scripts" / "summarize_runs.py")
summarize_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize_runs)

NEW = {"eval/neg_elbo": 98.0, "final/domain_fid": 14.5, "final/iwae_bits_per_dim": 6.5}


def write_runs(root, jobs: dict[str, dict]) -> None:
    for job, saved in jobs.items():
        (root / "setting" / job).mkdir(parents=True)
        (root / "setting" / job / "metrics.json").write_text(json.dumps(saved))


def test_old_and_new_runs_share_one_table_with_the_bits_per_dimension(tmp_path):
    write_runs(tmp_path, {"old": OLD_METRICS_JSON, "new": NEW})
    table = summarize_runs.summarize(summarize_runs.collect(tmp_path, None, 1000))
    assert "| setting | seeds | domain FID |" in table and "bits/dim" in table
    assert "| setting | 2 | 13.5 ± 1.4 |" in table and "| 6.50 |" in table, table


def test_jobs_are_rows_without_a_seeds_column(tmp_path, monkeypatch, capsys):
    write_runs(tmp_path, {"old": OLD_METRICS_JSON, "new": NEW})
    monkeypatch.setattr(sys, "argv", ["summarize_runs.py", str(tmp_path / "setting"), "--jobs"])
    assert summarize_runs.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| job | domain FID |") and lines[2].startswith("| new | 14.5 |")


def test_a_folder_that_is_not_there_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["summarize_runs.py", str(tmp_path / "nope")])
    assert summarize_runs.main() == 2
    assert "is not a folder" in capsys.readouterr().err
