"""Learning-rate schedules and the best checkpoint in real runs: the logged lr follows the
schedule, an interrupted scheduled run resumes on the same curve, best.pt holds the best
evaluation and survives keep_last, and the CLIs and resume= take it."""

from __future__ import annotations

import json

import pytest
import torch

from runner_utils import FAST, VAE_CURVE, compose_config, read_events, scalar_series
from vaegan_runner.cli.eval import main as eval_main
from vaegan_runner.cli.saved_run import load_saved_run
from vaegan_runner.train import run as train_run
from vaegan_runner.training.checkpoint import list_checkpoints, load_checkpoint
from vaegan_runner.training.checkpoint_migrations import with_added_keys
from vaegan_runner.training.stopping import Interrupted

pytestmark = pytest.mark.slow  # every test trains a run

SCHEDULED = [
    *VAE_CURVE,
    "optimizer.lr=2e-3",
    "optimizer.schedule.name=cosine",
    "optimizer.schedule.warmup_steps=5",
    "trainer.max_steps=30",
]


class StopAt:
    """A stand-in for the SIGTERM handler: asks the loop to stop at its ``n``-th step."""

    signal_name = "SIGTERM"

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    @property
    def requested(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def series(run_dir, tag):
    return dict(scalar_series(read_events(run_dir), tag))


def test_linear_schedule_reaches_zero_at_the_last_step(tmp_path):
    train_run(
        compose_config(
            [
                *FAST,
                "model=gan",
                "trainer.max_steps=20",
                "log.every_n_steps=5",
                "optimizer.schedule.name=linear",
                "optimizer.lr=1e-3",
                "optimizer.discriminator.lr=4e-3",
            ]
        ),
        tmp_path,
    )
    generator, discriminator = series(tmp_path, "lr/generator"), series(tmp_path, "lr/discriminator")
    # the lr logged at step s is the one the next update would use: 1e-3 * (1 - s / 19)
    assert generator[5] == pytest.approx(1e-3 * (1 - 5 / 19))
    assert discriminator[10] == pytest.approx(4 * generator[10])
    assert generator[20] == pytest.approx(0.0, abs=1e-12)


def test_an_interrupted_scheduled_run_resumes_on_the_same_curve(tmp_path):
    whole = tmp_path / "whole"
    train_run(compose_config(SCHEDULED), whole)
    cut = tmp_path / "cut"
    with pytest.raises(Interrupted):
        train_run(compose_config(SCHEDULED), cut, stop=StopAt(15))  # on a log boundary (log.every_n_steps=5)
    assert load_checkpoint(list_checkpoints(cut / "checkpoints")[-1])["schedulers"]
    train_run(compose_config([*SCHEDULED, f"resume={cut}"]), tmp_path / "again")
    for tag in ("lr/encoder", "loss/neg_elbo"):
        expected, resumed = series(whole, tag), series(cut, tag)
        assert sorted(resumed) == sorted(expected)
        for step in (20, 25, 30):
            assert resumed[step] == pytest.approx(expected[step], rel=1e-5), (tag, step)


# A VAE evaluated (recon_mse) and checkpointed every 4 steps, keeping one step checkpoint and best.pt.
BEST_RUN = [
    *FAST,
    "model=vae",
    "eval.every_n_steps=4",
    "eval.metrics=[recon_mse]",
    "eval.optimized_metric=recon_mse",
    "checkpoint.every_n_steps=4",
    "checkpoint.keep_last=1",
    "optimizer.lr=3e-3",
    "log.image_every_n_steps=1000",
]


@pytest.fixture(scope="module")
def best_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("best") / "run"
    train_run(compose_config([*BEST_RUN, "trainer.max_steps=24"]), run_dir)
    return run_dir


def test_best_checkpoint_holds_the_best_evaluation_and_survives_keep_last(best_run):
    curve = series(best_run, "metrics/recon_mse")
    best_step = min(curve, key=curve.get)
    saved = load_checkpoint(best_run / "checkpoints" / "best.pt")
    assert saved["step"] == best_step
    assert saved["best"] == {"metric": "recon_mse", "value": pytest.approx(curve[best_step]), "step": best_step}
    assert [p.name for p in list_checkpoints(best_run / "checkpoints")] == ["step_00000024.pt"]


def test_eval_cli_takes_the_best_or_the_last_checkpoint(best_run, tmp_path, capsys):
    best_step = load_checkpoint(best_run / "checkpoints" / "best.pt")["step"]
    for which, step in (("best", best_step), ("last", 24)):
        out = tmp_path / f"{which}.json"
        assert eval_main([str(best_run), f"checkpoint={which}", "metrics=recon_mse", f"out={out}"]) == 0
        assert json.loads(out.read_text())["step"] == step


def test_checkpoint_best_without_a_best_file_is_one_clear_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train_run(compose_config([*FAST, "model=gan", "trainer.max_steps=2", "checkpoint.keep_best=false"]), run_dir)
    assert eval_main([str(run_dir), "checkpoint=best"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint:" in err and "checkpoint.keep_best=true" in err and "Traceback" not in err


def test_training_resumes_from_the_best_checkpoint(best_run, tmp_path):
    best = best_run / "checkpoints" / "best.pt"
    best_step = load_checkpoint(best)["step"]
    copy = tmp_path / "run"
    (copy / "checkpoints").mkdir(parents=True)
    (copy / "checkpoints" / "best.pt").write_bytes(best.read_bytes())
    train_run(
        compose_config(
            [
                *FAST,
                "model=vae",
                "trainer.max_steps=30",
                "eval.every_n_steps=4",
                "eval.metrics=[recon_mse]",
                "eval.optimized_metric=recon_mse",
                "log.every_n_steps=2",
                "checkpoint.every_n_steps=4",
                "optimizer.lr=3e-3",
                "log.image_every_n_steps=1000",
                f"resume={copy / 'checkpoints' / 'best.pt'}",
            ]
        ),
        tmp_path / "new",
    )
    steps = sorted(series(copy, "loss/neg_elbo"))  # the run continued in the best checkpoint's folder
    assert steps[0] == best_step + 2 and steps[-1] == 30
    assert json.loads((copy / "metrics.json").read_text())["step"] == 30


def test_a_resumed_run_keeps_best_pt_unless_an_evaluation_beats_it(best_run, tmp_path, monkeypatch):
    """The last checkpoint's copy of the best record can be older than best.pt (it is written
    before the final evaluation); a resumed run compares with best.pt itself. Here that copy
    is made as stale as it gets (infinitely bad) and every evaluation after the resume scores
    worse than best.pt, so best.pt must stay as it was."""
    import shutil

    from vaegan_runner.training.held_out import HeldOut

    copy = tmp_path / "run"
    shutil.copytree(best_run, copy)
    last = copy / "checkpoints" / "step_00000024.pt"
    state = load_checkpoint(last)
    state["best"] = {"metric": "recon_mse", "value": float("inf"), "step": 4}
    torch.save(state, last)
    before = load_checkpoint(copy / "checkpoints" / "best.pt")
    monkeypatch.setattr(HeldOut, "during_training", lambda self, step, **kw: {"recon_mse": before["best"]["value"] + 1})
    train_run(compose_config([*BEST_RUN, "trainer.max_steps=32", f"resume={copy}"]), tmp_path / "new")
    after = load_checkpoint(copy / "checkpoints" / "best.pt")
    assert after["best"] == before["best"] and after["step"] == before["step"]


def test_a_checkpoint_from_before_schedules_still_loads(best_run, tmp_path):
    state = load_checkpoint(best_run / "checkpoints" / "step_00000024.pt")
    del state["config"]["optimizer"]["schedule"], state["config"]["checkpoint"]["keep_best"]
    assert with_added_keys(state["config"])["optimizer"]["schedule"]["name"] == "constant"
    old = tmp_path / "old.pt"
    torch.save(state, old)
    saved = load_saved_run(str(old), [], "cpu", with_data=False)
    assert saved.step == 24 and saved.run.optimizer.schedule.name == "constant"
