"""What vaegan-train says where it used to say nothing useful: overrides Hydra's grammar cannot
read (how to quote them), ``--help``'s family_* groups, and ``resume=auto`` of a finished run."""

from __future__ import annotations

import logging
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

import vaegan_runner.train
from runner_utils import FAST, compose_config, run_cli
from vaegan_runner.config.override_syntax import explain, how_to_quote
from vaegan_runner.config.resume_overrides import override_value

AWKWARD = [
    "outputs/my run (2)",
    "/data/Bob's images",
    '/data/a "quoted" name',
    "~/my data",
    "/data/[old]/x, y",
    "/a b#c;d&e!f<g^h`i",
    "C:\\data\\x y",
]


def hydra_value(argument: str) -> str:
    """The value Hydra reads from one command-line argument."""
    return OverridesParser.create().parse_overrides([argument])[0].value()


@pytest.mark.parametrize("value", AWKWARD)
def test_the_suggested_quoting_gives_hydra_the_value_as_it_is(value):
    """The shell word the message suggests, split as the shell would, reads back as the value."""
    (argument,) = shlex.split(how_to_quote(f"dataset.path={value}"))
    assert hydra_value(argument) == value


def test_a_value_the_shell_split_in_two_is_explained():
    message = explain("run", "hydra.run.dir=outputs/my", "missing EQUAL at '<EOF>'")
    assert "the shell split 'hydra.run.dir=outputs/my run' in two" in message
    assert message.endswith("'hydra.run.dir=outputs/my run'")


def test_a_quoted_resume_path_finds_its_run():
    assert override_value('resume="/runs/my run (2)"') == "/runs/my run (2)"
    assert override_value("resume=auto") == "auto"


@pytest.mark.slow
def test_cli_unreadable_override_says_how_to_quote_it_and_the_quoted_one_runs(tmp_path):
    run_dir = tmp_path / "my run (2)"
    quick = [*FAST, "trainer.max_steps=1", "eval.metrics=[]", "eval.final_metrics=[recon_mse]"]
    quick += ["eval.optimized_metric=recon_mse", "eval.final_max_images=64"]
    refused = run_cli([*quick, f"hydra.run.dir={run_dir}"], cwd=tmp_path, timeout=120)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr
    assert f"vaegan-train: error: Hydra cannot read the override 'hydra.run.dir={run_dir}'" in refused.stderr
    suggested = f"'hydra.run.dir=\"{run_dir}\"'"
    assert f"inside the shell's quotes: {suggested}" in refused.stderr
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()
    ran = run_cli([*quick, *shlex.split(suggested)], cwd=tmp_path, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.slow
def test_cli_a_value_split_by_the_shell_exits_2_with_the_whole_override_quoted(tmp_path):
    result = run_cli(["hydra.run.dir=outputs/my", "run"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Quote the whole override for the shell: 'hydra.run.dir=outputs/my run'" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_help_explains_the_family_groups(tmp_path):
    result = run_cli(["--help"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    groups = result.stdout.split("== Configuration groups ==", 1)[1].split("== Config ==", 1)[0]
    assert "family_optimizer: " in groups  # Hydra lists every group; the text under the list says why not to name it
    assert "The family_* groups are not ones to name: each follows model= and one other group" in groups
    assert "optimizer.lr=" in groups and result.stdout.startswith("vaegan-train: train a VAE")


def test_resume_auto_of_a_finished_run_says_so_and_how_to_train_it_further(tmp_path, caplog):
    overrides = [*FAST, "trainer.max_steps=null", "trainer.max_epochs=1", "trainer.batch_size=128"]
    overrides += ["dataset.n_train=256", "eval.metrics=[]", "eval.final_metrics=[recon_mse]"]
    overrides += ["eval.optimized_metric=recon_mse", "eval.every_n_steps=1000", "log.image_every_n_steps=1000"]
    run_dir = tmp_path / "run"
    first = vaegan_runner.train.run(compose_config(overrides), run_dir)
    with caplog.at_level(logging.INFO, logger="vaegan_runner"):
        again = vaegan_runner.train.run(compose_config([*overrides, "resume=auto"]), run_dir)
    assert again == first  # nothing trained: the finished run's results
    said = [r.getMessage() for r in caplog.records if "is finished" in r.getMessage()]
    assert said == [
        f"the run in {run_dir} is finished: it trained 2 steps (1 epoch) and this command asks for "
        "trainer.max_epochs=1, so there is nothing to train; its results (metrics.json) stand. To train it "
        "further, ask for more, e.g. trainer.max_epochs=2 resume=auto"
    ]
