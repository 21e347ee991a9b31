"""scripts/benchmark_quality.py: the runs it starts are ones the runner accepts, from any folder."""

import importlib.util
import json
import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from runner_utils import REPO, compose_config
from vaegan_runner.run_schema import validate

sys.path.insert(0, str(REPO / "scripts"))
spec = importlib.util.spec_from_file_location("benchmark_quality", REPO / "scripts" / "benchmark_quality.py")
benchmark_quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_quality)


@pytest.mark.parametrize("family", benchmark_quality.FAMILIES)
def test_every_run_parses_and_validates(family, tmp_path):
    run_dir = tmp_path / "mnist" / family / "seed=2"  # the script's own layout: '=' in the path
    overrides = benchmark_quality.train_overrides(family, "shapes", 2, 3, run_dir, ["trainer.batch_size=32"])
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(overrides)}
    assert parsed["hydra.run.dir"] == str(run_dir)
    cfg = validate(compose_config([o for o in overrides if not o.startswith("hydra.")]))
    assert (cfg.model.name, cfg.seed, cfg.trainer.max_epochs, cfg.trainer.batch_size) == (family, 2, 3, 32)
    assert cfg.dataset.binarize == (family == "vae")  # the VAE's likelihood is on binarised images


@pytest.mark.parametrize("family", benchmark_quality.FAMILIES)
def test_colour_runs_keep_their_8_bit_pixels(family, tmp_path):
    overrides = benchmark_quality.train_overrides(family, "cifar10", 0, 1, tmp_path / "run", [])
    cfg = validate(compose_config([o for o in overrides if not o.startswith("hydra.")]))
    assert cfg.dataset.name == "cifar10" and not cfg.dataset.binarize
    assert cfg.model.name != "vae" or cfg.model.likelihood == "discretized_logistic"


def test_relative_data_and_cache_folders_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    environ = {"VAEGAN_DATA_DIR": "../shared/data", "VAEGAN_CACHE_DIR": "cache", "OTHER": "x"}
    benchmark_quality.absolute_path_variables(environ)
    assert environ == {
        "VAEGAN_DATA_DIR": str((tmp_path / "../shared/data").resolve()),
        "VAEGAN_CACHE_DIR": str(tmp_path / "cache"),
        "OTHER": "x",
    }


def test_an_epoch_is_the_recorded_training_split(tmp_path):
    """A run that max_steps ended inside its first epoch still reports seconds per whole epoch;
    a run from before train_images was recorded ran whole epochs (images seen / epochs)."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("trainer:\n  max_epochs: 3\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"images_seen": 1920, "train_images": 60000}))
    assert benchmark_quality.images_per_epoch(tmp_path) == 60000
    (tmp_path / "metrics.json").write_text(json.dumps({"images_seen": 179904}))
    assert benchmark_quality.images_per_epoch(tmp_path) == 59968


def test_the_table_says_what_the_metrics_were_computed_on():
    fid = {"samples": 10000, "reference": 10000, "seed": 0}
    rows = {
        "vae": [{"metric_counts": {"domain_fid": fid, "iwae": {"images": 10000, "k": 100}}}],
        "gan": [{"metric_counts": {"domain_fid": fid}}, {"metric_counts": {"domain_fid": {**fid, "samples": 500}}}],
    }
    assert benchmark_quality.counts_line(rows) == (
        "domain_fid: samples 10000, reference 10000 | samples 500, reference 10000; iwae: images 10000, k 100"
    )


def test_lengths_keep_their_own_folders():
    assert benchmark_quality.length_folder(3) == "3-epochs"
    assert benchmark_quality.length_folder(None) == "default-epochs"


def test_a_finished_run_with_other_overrides_is_refused(tmp_path):
    """A run folder reused with other extra overrides would enter the table under the wrong name."""
    run_dir = tmp_path / "3-epochs" / "mnist" / "gan" / "seed=0"
    (run_dir / ".hydra").mkdir(parents=True)
    asked = benchmark_quality.train_overrides("gan", "mnist", 0, 3, run_dir, [])
    recorded = benchmark_quality.task_overrides(asked)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in recorded))
    benchmark_quality.check_finished_run(run_dir, asked)  # the same run: accepted
    assert "resume=auto" in asked and "resume=auto" not in recorded  # how a run started is not what it trained
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in [*recorded, "resume=auto"]))
    benchmark_quality.check_finished_run(run_dir, asked)  # recorded with resume=auto: the same run
    other = benchmark_quality.train_overrides("gan", "mnist", 0, 3, run_dir, ["model.net.width=128"])
    with pytest.raises(SystemExit, match="(?s)other overrides.*asked:.*model.net.width=128"):
        benchmark_quality.check_finished_run(run_dir, other)


def test_inception_scores_join_the_runs_row_and_the_table(tmp_path, monkeypatch):
    """--inception: vaegan-eval's report beside metrics.json is read into the run's row under
    the final/ names, with its stamps, and becomes columns of the table; a run that has its
    report is not scored again."""
    report = {
        "metrics": {"inception_fid": 81.25, "inception_kid": 0.0712, "inception_kid_std": 0.002, "other": 1.0},
        "metric_counts": {"inception_fid": {"samples": 10000, "reference": 10000, "precision": "bf16"}},
    }
    (tmp_path / "inception.json").write_text(json.dumps(report))
    monkeypatch.setattr(benchmark_quality.subprocess, "run", lambda *a, **k: pytest.fail("scored again"))
    run = {"final/domain_fid": 150.0, "metric_counts": {"domain_fid": {"samples": 10000, "reference": 10000}}}
    row = benchmark_quality.inception_scored(tmp_path, run)
    assert row["final/inception_fid"] == 81.25 and row["final/inception_kid"] == 0.0712 and "final/other" not in row
    assert set(row["metric_counts"]) == {"domain_fid", "inception_fid"}
    table = benchmark_quality.summarize({"gan": [row]})
    assert "| Inception FID | Inception KID | domain FID |" in table and "| 81.2 | 0.0712 | 150.0 |" in table
    assert "inception_fid: samples 10000, reference 10000" in benchmark_quality.counts_line({"gan": [row]})
