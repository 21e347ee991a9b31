"""The runner's version: one place of truth (pyproject.toml), recorded in every run record
(metrics.json, each checkpoint, the HPARAMS row); checkpoints from before versions were recorded
still load, and a resume across versions is named in one warning."""

from __future__ import annotations

import json
import logging
import re
import tomllib

import pytest
import torch

from runner_utils import FAST, OLD_METRICS_JSON, REPO, compose_config, read_events
from vaegan_runner import __version__
from vaegan_runner.run_schema import validate
from vaegan_runner.train import run as train_run
from vaegan_runner.training.checkpoint import Checkpoint, list_checkpoints, load_checkpoint, read_checkpoint
from vaegan_runner.training.resume_check import check_resumable, warn_if_other_version
from vaegan_runner.version import BEFORE_VERSIONS, source_tree_version, version_text

# 2 steps of a small VAE on shapes, one cheap final metric, no images or evaluations on the way.
QUICK_VAE = [
    *FAST,
    "model=vae",
    "eval.metrics=[]",
    "eval.final_metrics=[recon_mse]",
    "eval.optimized_metric=recon_mse",
    "log.image_every_n_steps=1000",
    "eval.every_n_steps=1000",
    "eval.final_max_images=64",
    "trainer.max_steps=2",
]


def pyproject_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("versions") / "run"
    train_run(compose_config(QUICK_VAE), run_dir)
    return run_dir


# --- where the version comes from --------------------------------------------------------------


def test_version_is_pyproject_version():
    assert __version__ == pyproject_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__), __version__


def test_source_tree_version_reads_only_this_projects_pyproject(tmp_path):
    (tmp_path / "pkg").mkdir()
    assert source_tree_version(tmp_path / "pkg") is None  # no pyproject.toml beside it: an installed package
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "someone-else"\nversion = "9.9.9"\n')
    assert source_tree_version(tmp_path / "pkg") is None  # another project's tree
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "vaegan-runner"\nversion = "1.2.3"\n')
    assert source_tree_version(tmp_path / "pkg") == "1.2.3"


def test_version_text_names_the_runner_and_what_it_runs_on():
    line = version_text("vaegan-train")
    assert line.startswith(f"vaegan-train {__version__} (") and f"torch {torch.__version__.split('+')[0]}" in line
    assert "Python 3." in line and "\n" not in line


def test_changelog_has_a_section_for_this_version():
    """Raising the version in pyproject.toml goes with its CHANGELOG section (docs/development.md)."""
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M), __version__


# --- run records --------------------------------------------------------------------------------


def test_metrics_json_checkpoint_and_hparams_carry_the_version(finished_run):
    import json

    from tensorboard.plugins.hparams import plugin_data_pb2

    assert json.loads((finished_run / "metrics.json").read_text())["runner_version"] == __version__
    on_disk = load_checkpoint(list_checkpoints(finished_run / "checkpoints")[-1])
    assert on_disk["runner_version"] == __version__
    assert read_checkpoint(list_checkpoints(finished_run / "checkpoints")[-1]).written_by == __version__
    content = read_events(finished_run).SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["runner_version"].string_value == __version__
    saved = json.loads((finished_run / "metrics.json").read_text())  # and the copy of the data it ran on
    assert (
        start.hparams["data_source"].string_value == saved["data_source"] and "pixels sha256:" in saved["data_source"]
    )


def test_checkpoint_from_before_versions_loads_and_resumes(finished_run, tmp_path):
    """A checkpoint written before 0.2.0 has no ``runner_version``: it reads as 'before 0.2.0',
    passes the resume check and continues training; the checkpoints written after it carry
    this version."""
    newest = list_checkpoints(finished_run / "checkpoints")[-1]
    state = load_checkpoint(newest)
    del state["runner_version"]
    old_run = tmp_path / "old"
    (old_run / "checkpoints").mkdir(parents=True)
    old = old_run / "checkpoints" / newest.name
    torch.save(state, old)

    saved = read_checkpoint(old)
    assert saved.runner_version is None and saved.written_by == BEFORE_VERSIONS == "before 0.2.0"
    cfg = compose_config([*QUICK_VAE, "trainer.max_steps=4", f"resume={old}"])
    check_resumable(saved, validate(cfg))
    results = train_run(cfg, tmp_path / "unused")
    assert results["recon_mse"] >= 0
    continued = list_checkpoints(old_run / "checkpoints")
    assert [p.name for p in continued][-1] == "step_00000004.pt"
    assert load_checkpoint(continued[-1])["runner_version"] == __version__


# --- resuming across versions -------------------------------------------------------------------


def checkpoint_by(version: str | None) -> Checkpoint:
    return Checkpoint(family={}, config={}, step=0, runner_version=version)


def test_a_new_checkpoint_records_this_version():
    saved = Checkpoint(family={}, config={}, step=0)
    assert saved.runner_version == __version__ and saved.to_dict()["runner_version"] == __version__


def test_resume_by_another_version_warns_once_naming_both(caplog):
    with caplog.at_level(logging.WARNING, logger="vaegan_runner"):
        message = warn_if_other_version(checkpoint_by("0.1.9"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [message]
    assert "written by vaegan-runner 0.1.9 with vaegan-runner " + __version__ in message
    assert "\n" not in message


def test_resume_of_a_checkpoint_from_before_versions_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="vaegan_runner"):
        message = warn_if_other_version(checkpoint_by(None).to_dict())  # the dict on disk works too
    assert f"written by vaegan-runner before 0.2.0 with vaegan-runner {__version__}" in message
    assert [r.getMessage() for r in caplog.records] == [message]


def test_resume_by_the_same_version_is_silent(caplog):
    with caplog.at_level(logging.DEBUG, logger="vaegan_runner"):
        assert warn_if_other_version(checkpoint_by(__version__)) is None
    assert caplog.records == []


# --- metrics.json of older runners -------------------------------------------------------------


def test_a_metrics_json_from_before_0_4_reads_with_the_final_names(tmp_path):
    from vaegan_runner.training.run_record import finished_results, with_final_names

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(OLD_METRICS_JSON))
    assert finished_results(path) == {"eval/neg_elbo": 100.0, "domain_fid": 12.5, "iwae_nll": 90.0}
    renamed = with_final_names(OLD_METRICS_JSON)
    assert renamed["final/domain_fid"] == 12.5 and not any(k.startswith("metrics/") for k in renamed)
    assert renamed["metric_counts"] == OLD_METRICS_JSON["metric_counts"]
    new = {**renamed, "runner_version": __version__}
    assert with_final_names(new) == new
