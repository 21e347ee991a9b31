"""The evaluation a user can watch and stop: a line or bar per metric with its seconds, an
estimate of its cost up front, Ctrl-C keeping what finished, and the IWAE bound kept near the
training's time (eval.iwae_max_images)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from runner_utils import FAST, REPO, compose_config
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.data import load_data
from vaegan_runner.metrics.context import IWAE_MIN_IMAGES, MetricContext
from vaegan_runner.metrics.cost import estimate_metrics, format_seconds
from vaegan_runner.metrics.evaluate import evaluate_metrics
from vaegan_runner.metrics.progress import EvaluationStopped, Progress
from vaegan_runner.metrics.resources import MetricResources
from vaegan_runner.metrics.results import STOPPED, MetricResults
from vaegan_runner.run_schema import validate
from vaegan_runner.train import run as train_run
from vaegan_runner.training.checkpoint import list_checkpoints
from vaegan_runner.training.run_record import evaluation_complete
from vaegan_runner.training.stopping import EXIT_CTRL_C, StopRequest

HELD_OUT = 2000  # more than IWAE_MIN_IMAGES, so that auto has images to leave out
SMALL = [*FAST, "model=vae", f"dataset.n_test={HELD_OUT}", "dataset.n_train=256", "eval.batch_size=500"]
SMALL += ["eval.final_max_images=null"]


@pytest.fixture
def shapes_vae(build_family):
    """(run config, family, data): an untrained narrow VAE and shapes with 2000 held-out images."""
    run, family = build_family("vae", "dataset.n_train=256", f"dataset.n_test={HELD_OUT}", "eval.batch_size=500")
    return run, family, load_data(run.dataset, torch.device("cpu"))


def without_data(stamp: dict) -> dict:
    """A stamp less the digest of the data every stamp names (``MetricContext.note``)."""
    return {k: v for k, v in stamp.items() if k != "data"}


def evaluate(run, family, data, names, lines, **kwargs):
    resources = MetricResources(data, run.eval, torch.device("cpu"), lines.append)
    return evaluate_metrics(
        names,
        family,
        resources,
        n_samples=64,
        max_images=None,
        inception_on_cpu=False,
        **{"progress": Progress(lines.append), **kwargs},
    )


# --- what the evaluation shows ---------------------------------------------------------------


def test_each_metric_logs_its_start_with_an_estimate_and_its_end_with_its_seconds(shapes_vae):
    run, family, data = shapes_vae
    run.eval.iwae_k = 2
    lines: list[str] = []
    results = evaluate(run, family, data, ["neg_elbo", "iwae", "recon_mse"], lines)
    assert results.complete and set(results.seconds) == {"neg_elbo", "iwae", "recon_mse"}
    assert lines[0].startswith("evaluation: 3 metrics, ~")
    assert lines[1].startswith("  neg_elbo ~") and f"({HELD_OUT} held-out images)" in lines[1]
    assert f"({HELD_OUT} held-out images x k=2)" in lines[2]
    for name in ("neg_elbo", "iwae", "recon_mse"):
        start = lines.index(next(line for line in lines if line.startswith(f"metric {name}: started (~")))
        assert lines[start + 1] == f"metric {name}: {results.seconds[name]:.1f} s"


def test_the_estimate_names_what_it_cannot_time_once_and_trains_nothing(shapes_vae, tmp_path):
    run, family, data = shapes_vae
    run.eval.cache_dir = str(tmp_path)  # no domain classifier cached: the estimate must not train one
    resources = MetricResources(data, run.eval, torch.device("cpu"), lambda line: None)
    ctx = MetricContext(family, resources, 64, None, MetricResults())
    estimates = estimate_metrics(["domain_fid", "classifier_score", "precision_recall", "linear_probe"], ctx)
    assert estimates["domain_fid"].untimed == "training the domain classifier first (once per dataset, then cached)"
    assert estimates["domain_fid"].work == f"64 samples, {HELD_OUT} domain reference images"
    assert (estimates["classifier_score"].work, estimates["classifier_score"].untimed) == (
        "the passes of an earlier metric",
        "",
    )
    assert estimates["precision_recall"].untimed == "the k-nearest-neighbour distances"
    assert estimates["linear_probe"].work == f"{256 + HELD_OUT} images encoded"
    assert estimates["linear_probe"].untimed == "the probe's fit" and estimates["linear_probe"].seconds > 0
    assert "domain_classifier" not in vars(resources)


def test_a_bar_counts_the_images_of_each_pass(shapes_vae, monkeypatch):
    import vaegan_runner.metrics.progress as progress_module

    bars = []

    class Bar:
        def __init__(self, total, desc, **kwargs):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, n):
            self.n += n

        def refresh(self):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(progress_module, "tqdm", Bar)
    run, family, data = shapes_vae
    lines: list[str] = []
    evaluate(run, family, data, ["recon_mse", "linear_probe"], lines, progress=Progress(lines.append, bar=True))
    assert [(b.desc, b.total, b.n, b.closed) for b in bars] == [
        ("recon_mse", HELD_OUT, HELD_OUT, True),
        ("linear_probe", 256 + HELD_OUT, 256 + HELD_OUT, True),  # the training codes, then the held-out ones
    ]
    assert not any("started" in line for line in lines)  # the bar says it
    assert any(line.startswith("metric linear_probe: ") and line.endswith(" s") for line in lines)


def test_evaluations_during_training_show_nothing(shapes_vae):
    run, family, data = shapes_vae
    lines: list[str] = []
    resources = MetricResources(data, run.eval, torch.device("cpu"), lines.append)
    results = evaluate_metrics(["recon_mse"], family, resources, n_samples=64, max_images=None, inception_on_cpu=False)
    assert results.complete and "recon_mse" in results.values and lines == []


# --- stopping it -------------------------------------------------------------------------------


def test_a_stop_keeps_what_finished_and_lists_the_rest_as_stopped(shapes_vae):
    run, family, data = shapes_vae
    lines: list[str] = []
    signal_name = [None]

    def say(line):
        lines.append(line)
        if line.startswith("metric neg_elbo: ") and line.endswith(" s"):
            signal_name[0] = "SIGINT"  # Ctrl-C right after the first metric ended

    progress = Progress(say, stop_signal=lambda: signal_name[0])
    results = evaluate(run, family, data, ["neg_elbo", "recon_mse", "iwae"], lines, progress=progress)
    assert not results.complete and results.stopped_by == "SIGINT"
    assert list(results.values) == ["neg_elbo"] and list(results.seconds) == ["neg_elbo"]
    assert results.skipped == {"recon_mse": STOPPED, "iwae": STOPPED}


def test_a_signal_inside_a_metric_stops_it_at_once(shapes_vae):
    """The handler raises inside the running pass (Progress.interrupt), not after its batch."""
    run, family, data = shapes_vae
    run.eval.iwae_k = 50
    lines: list[str] = []
    progress = Progress(lines.append)
    calls = []
    original = family.log_importance_weights

    def bound(x, k, y=None):
        calls.append(k)
        if k == 50:  # the IWAE metric's first batch (the estimate times the bound at 1 and 4 draws)
            progress.interrupt("SIGINT")
        return original(x, k, y)

    family.log_importance_weights = bound
    results = evaluate(run, family, data, ["neg_elbo", "iwae"], lines, progress=progress)
    assert results.skipped == {"iwae": STOPPED} and "neg_elbo" in results.values
    assert calls.count(50) == 1  # of its 4 batches, none after the signal


def test_ctrl_c_as_keyboard_interrupt_stops_a_shown_evaluation_only(shapes_vae):
    run, family, data = shapes_vae
    original = family.reconstruct

    lines: list[str] = []

    def interrupted(x, y=None):
        if any(line.startswith("metric recon_mse: started") for line in lines):  # not the estimate's timing
            raise KeyboardInterrupt
        return original(x, y)

    family.reconstruct = interrupted
    results = evaluate(run, family, data, ["neg_elbo", "recon_mse"], lines, progress=Progress(lines.append))
    assert results.stopped_by == "SIGINT" and results.skipped == {"recon_mse": STOPPED}
    resources = MetricResources(data, run.eval, torch.device("cpu"), lines.append)
    with pytest.raises(KeyboardInterrupt):  # during training the loop's own handling stands
        evaluate_metrics(["recon_mse"], family, resources, n_samples=64, max_images=None, inception_on_cpu=False)
    family.reconstruct = original


def test_interrupt_raises_only_inside_a_stoppable_region():
    progress = Progress(lambda line: None)
    progress.interrupt("SIGINT")  # between metrics: nothing raised here
    with pytest.raises(EvaluationStopped), progress.stoppable():
        progress.interrupt("SIGTERM")


def test_a_signal_during_an_evaluation_says_so_and_interrupts_it(capsys, monkeypatch):
    progress = Progress(lambda line: None)
    exits = []
    monkeypatch.setattr(os, "_exit", lambda code: exits.append(code))
    with StopRequest() as stop:
        stop.evaluating("the checkpoint c.pt is saved", progress.interrupt)
        with pytest.raises(EvaluationStopped) as stopped, progress.stoppable():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs at the next bytecode
        assert stopped.value.signal_name == "SIGINT" and stop.signal_name == "SIGINT"
        assert "SIGINT: stopping the evaluation (the checkpoint c.pt is saved)" in capsys.readouterr().err
        os.kill(os.getpid(), signal.SIGINT)
        assert exits == [EXIT_CTRL_C]


def test_an_incomplete_metrics_json_is_not_a_finished_run(tmp_path):
    path = tmp_path / "metrics.json"
    assert not evaluation_complete(path)
    path.write_text(json.dumps({"step": 5, "complete": False}))
    assert not evaluation_complete(path)
    path.write_text(json.dumps({"step": 5}))  # written before the key existed
    assert evaluation_complete(path)
    path.write_text(json.dumps({"step": 5, "complete": True}))
    assert evaluation_complete(path)


# --- the IWAE bound kept near the training's time -----------------------------------------------


@pytest.mark.parametrize(
    ("cap", "training_seconds", "images"),
    [
        ("auto", 1e-9, IWAE_MIN_IMAGES),  # far longer than the training: the fewest auto takes
        ("auto", 1e9, HELD_OUT),  # shorter: all
        ("auto", None, HELD_OUT),  # no training time (vaegan-eval): all
        (None, 1e-9, HELD_OUT),
        (1500, 1e-9, 1500),
        (5000, None, HELD_OUT),
    ],
)
def test_iwae_max_images_picks_the_images_and_the_stamp_says_how_many(shapes_vae, cap, training_seconds, images):
    run, family, data = shapes_vae
    run.eval.iwae_k, run.eval.iwae_max_images = 2, cap
    lines: list[str] = []
    results = evaluate(run, family, data, ["iwae"], lines, training_seconds=training_seconds)
    assert results.counts["iwae"] == {"images": images, "k": 2, "data": data.digest}
    said = [line for line in lines if line.startswith("eval.iwae_max_images=auto")]
    if cap == "auto" and images < HELD_OUT:
        assert f"on {images} of the {HELD_OUT} held-out images" in said[0] and "null uses them all" in said[0]
    else:
        assert said == []


def test_auto_rounds_down_to_a_multiple_of_its_minimum(shapes_vae):
    run, family, data = shapes_vae
    run.eval.iwae_k = 2
    lines: list[str] = []
    resources = MetricResources(data, run.eval, torch.device("cpu"), lines.append)
    ctx = MetricContext(family, resources, 64, None, MetricResults(), training_seconds=1.0)
    per_image = ctx.likelihood_seconds_per_image(2)
    ctx.training_seconds = per_image * (HELD_OUT - 1)  # all but one image fit
    assert ctx.iwae_images() == IWAE_MIN_IMAGES * ((HELD_OUT - 1) // IWAE_MIN_IMAGES)


@pytest.mark.parametrize(
    ("others_share", "leaves_some_out", "said_why"),
    [(0.5, True, "leave of the training's"), (2.0, False, ""), (-1.5, True, "alone take longer than the training's")],
)
def test_auto_leaves_the_other_metrics_their_share_of_the_training_time(
    shapes_vae, others_share, leaves_some_out, said_why
):
    run, family, data = shapes_vae
    run.eval.iwae_k = 2
    lines: list[str] = []
    resources = MetricResources(data, run.eval, torch.device("cpu"), lines.append)
    progress = Progress(lines.append)
    ctx = MetricContext(family, resources, 64, None, MetricResults(), progress=progress, training_seconds=1.0)
    ctx.metric_names = ["neg_elbo", "recon_mse", "iwae"]
    per_image, others = ctx.likelihood_seconds_per_image(2), ctx.other_metrics_seconds()
    assert others > 0
    # the whole split's bound alone fits the training's time; beside the other metrics only with room to spare
    ctx.training_seconds = max(1e-9, per_image * HELD_OUT + others * others_share)
    assert (ctx.iwae_images() < HELD_OUT) is leaves_some_out
    said = [line for line in lines if line.startswith("eval.iwae_max_images=auto")]
    assert bool(said) is leaves_some_out
    if leaves_some_out:
        assert f"the other metrics (~{format_seconds(others)})" in said[0] and said_why in said[0], said[0]


@pytest.mark.parametrize("value", [0, -5, "all", 2.5, True])
def test_iwae_max_images_refuses_anything_but_auto_null_or_a_count(value):
    with pytest.raises(ConfigError) as err:
        validate(compose_config([*FAST, "trainer.max_steps=10", f"eval.iwae_max_images={str(value).lower()}"]))
    assert err.value.key == "eval.iwae_max_images" and "auto" in err.value.message


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("null", None), ("3000", 3000)])
def test_iwae_max_images_accepts_auto_null_and_a_count(value, expected):
    assert (
        validate(compose_config([*FAST, "trainer.max_steps=10", f"eval.iwae_max_images={value}"])).eval.iwae_max_images
        == expected
    )


# --- whole runs --------------------------------------------------------------------------------


def short_run(tmp_path, capsys, cap: str) -> tuple[dict, str]:
    """A 3-step run whose IWAE bound (k=20 over 2000 images) would take far longer than its training."""
    overrides = [*SMALL, "trainer.max_steps=3", "eval.iwae_k=20", f"eval.iwae_max_images={cap}"]
    overrides += ["eval.final_metrics=[neg_elbo,iwae]", "eval.optimized_metric=neg_elbo"]
    train_run(compose_config(overrides), tmp_path / cap)
    return json.loads((tmp_path / cap / "metrics.json").read_text()), capsys.readouterr().out


@pytest.mark.slow
def test_a_short_run_scales_the_iwae_images_down_and_says_so(tmp_path, capsys):
    saved, out = short_run(tmp_path, capsys, "auto")
    assert saved["complete"] is True
    assert without_data(saved["metric_counts"]["iwae"]) == {"images": IWAE_MIN_IMAGES, "k": 20}
    assert saved["metric_counts"]["neg_elbo"]["images"] == HELD_OUT  # the other metrics keep the whole split
    assert f"eval.iwae_max_images=auto: the IWAE bound (k=20) on {IWAE_MIN_IMAGES} of the {HELD_OUT}" in out
    assert "will take longer than the training" in out and "eval.iwae_k (20)" in out


@pytest.mark.slow
def test_with_null_a_short_run_uses_every_held_out_image(tmp_path, capsys):
    saved, out = short_run(tmp_path, capsys, "null")
    assert without_data(saved["metric_counts"]["iwae"]) == {"images": HELD_OUT, "k": 20}
    assert "eval.iwae_max_images=auto" not in out


@pytest.mark.slow
def test_ctrl_c_during_the_end_of_run_evaluation_keeps_what_finished_and_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    args = [*SMALL, "trainer.max_steps=3", "eval.iwae_k=500", "eval.iwae_max_images=null"]
    args += ["eval.final_metrics=[recon_mse,iwae]", "eval.optimized_metric=recon_mse", f"hydra.run.dir={run_dir}"]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaegan_runner.train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for line in proc.stdout:  # wait for the evaluation's start line of the slow metric
        seen.append(line)
        if line.startswith("metric iwae: started"):
            break
    else:
        raise AssertionError(f"the evaluation never reached iwae ({proc.wait()}): {''.join(seen)[-2000:]}")
    time.sleep(1.0)
    asked = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_CTRL_C, rest[-2000:]
    assert time.monotonic() - asked < 60  # at once, not after the 2000 images x k=500 of the bound
    (checkpoint,) = list_checkpoints(run_dir / "checkpoints")
    message = f"evaluation stopped by Ctrl-C after recon_mse; the checkpoint {checkpoint} is saved; "
    assert message in rest and f"`vaegan-eval {run_dir} metrics=iwae` computes the rest" in rest
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["complete"] is False and saved["metrics_skipped"] == {"iwae": STOPPED}
    assert "final/recon_mse" in saved and "final/iwae_nll" not in saved
    assert without_data(saved["metric_counts"]["recon_mse"]) == {"images": HELD_OUT}


@pytest.mark.slow
def test_resuming_a_run_whose_evaluation_was_stopped_evaluates_it_again(tmp_path, caplog):
    overrides = [*SMALL, "trainer.max_steps=3", "eval.final_metrics=[recon_mse]", "eval.optimized_metric=recon_mse"]
    runs = tmp_path / "vae-shapes"
    train_run(compose_config(overrides), runs / "a")
    path = runs / "a" / "metrics.json"
    whole = json.loads(path.read_text())
    stopped = {k: v for k, v in whole.items() if k != "final/recon_mse"}
    path.write_text(json.dumps({**stopped, "metrics_skipped": {"recon_mse": STOPPED}, "complete": False}))
    caplog.set_level("INFO")
    results = train_run(compose_config([*overrides, "resume=auto"]), runs / "b")
    assert results["recon_mse"] == pytest.approx(whole["final/recon_mse"])
    again = json.loads(path.read_text())
    assert again["complete"] is True and again["metrics_skipped"] == {} and again["step"] == 3
    assert "is finished" not in caplog.text and not (runs / "b").exists()
