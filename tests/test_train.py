"""End to end: the CLI trains, TensorBoard holds what docs/runs.md promises, runs resume."""

from __future__ import annotations

import json

import pytest
import torch

from runner_utils import FAST, compose_config, read_events, run_cli, scalar_series
from vaegan_runner.train import run as train_run
from vaegan_runner.training.checkpoint import list_checkpoints, load_checkpoint


def only_run_dir(root):
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.parametrize(
    "model,scalars,images",
    [
        (
            "vae",
            ["loss/recon", "loss/kl", "loss/neg_elbo", "lr/encoder", "lr/decoder", "eval/neg_elbo"],
            ["samples", "reconstructions", "interpolations"],
        ),
        (
            "gan",
            [
                "loss/d",
                "loss/g",
                "acc/d_real",
                "acc/d_fake",
                "lr/generator",
                "lr/discriminator",
                "eval/d",
                "eval/d_acc_real",
            ],
            ["samples"],
        ),
    ],
)
@pytest.mark.slow
def test_cli_run_writes_events_checkpoints_and_samples(tmp_path, model, scalars, images):
    result = run_cli(
        [
            f"model={model}",
            *FAST,
            "trainer.max_steps=40",
            "log.every_n_steps=10",
            "log.image_every_n_steps=20",
            "eval.every_n_steps=20",
            "checkpoint.every_n_steps=20",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "outputs" / f"{model}-shapes")
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "samples.png").stat().st_size > 0
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step_00000020.pt", "step_00000040.pt"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 40 and metrics["eval_images"] == 128
    assert metrics["train_images"] == 512 and metrics["images_seen"] == 40 * 32  # the split, and what was seen

    events = read_events(run_dir)
    for tag in scalars + ["perf/images_per_sec"]:
        assert tag in events.Tags()["scalars"], (tag, events.Tags()["scalars"])
        assert all(torch.isfinite(torch.tensor(v)) for _, v in scalar_series(events, tag))
    assert [s for s, _ in scalar_series(events, scalars[0])] == [10, 20, 30, 40]
    assert sorted(events.Tags()["images"]) == sorted(images)
    for tag in images:
        assert [e.step for e in events.Images(tag)] == [20, 40]
        assert events.Images(tag)[-1].width > 28 and events.Images(tag)[-1].height > 28
    if "reconstructions" in images:
        assert_first_row_is_test_inputs(events.Images("reconstructions")[-1].encoded_image_string)


def assert_first_row_is_test_inputs(png: bytes) -> None:
    """The reconstruction grid alternates rows of 8 held-out inputs and their reconstructions."""
    import io

    import numpy as np
    from PIL import Image

    from vaegan_runner.data import load_data
    from vaegan_runner.run_schema import validate

    grid = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    assert grid.shape == (8 * 30 + 2, 8 * 30 + 2)  # 8 rows of 8 cells, 28 px + 2 px padding
    data = load_data(validate(compose_config([*FAST, "trainer.max_steps=1"])).dataset, torch.device("cpu"))
    inputs = data.test.take(8)[0][:, 0].numpy().astype(int)
    for col in range(8):
        cell = grid[2:30, 2 + 30 * col : 30 + 30 * col].astype(int)
        assert np.abs(cell - inputs[col]).max() <= 1


@pytest.mark.slow
def test_vae_negative_elbo_falls(tmp_path):
    cfg = compose_config(
        [
            "model=vae",
            *FAST,
            "trainer.max_steps=300",
            "log.every_n_steps=50",
            "eval.every_n_steps=100",
            "checkpoint.every_n_steps=1000",
            "optimizer.lr=1e-3",
            "optimizer.betas=[0.9,0.999]",
        ]
    )
    final = train_run(cfg, tmp_path)
    series = [v for _, v in scalar_series(read_events(tmp_path), "loss/neg_elbo")]
    assert len(series) == 6
    assert series[-1] < 0.7 * series[0], series
    evals = [v for _, v in scalar_series(read_events(tmp_path), "eval/neg_elbo")]
    assert evals[-1] < evals[0], evals
    assert final["eval/neg_elbo"] == pytest.approx(evals[-1])


@pytest.mark.parametrize(
    "model,conditional,extra",
    [
        ("vae", False, []),
        ("gan", False, []),
        ("vae", True, []),
        ("gan", True, []),
        ("bigan", True, []),
        ("vae", False, ["model.prior=mixture"]),  # the learned prior's parameters and their Adam state
    ],
)
@pytest.mark.slow
def test_resumed_run_continues_the_same_curve(tmp_path, model, conditional, extra):
    common = [
        f"model={model}",
        f"model.conditional={str(conditional).lower()}",
        *extra,
        *FAST,
        "trainer.deterministic=true",
        "log.every_n_steps=5",
        "log.image_every_n_steps=1000",
        "eval.every_n_steps=10",
        "checkpoint.every_n_steps=10",
    ]
    whole = tmp_path / "whole"
    train_run(compose_config(common + ["trainer.max_steps=30"]), whole)

    split = tmp_path / "split"
    train_run(compose_config(common + ["trainer.max_steps=20"]), split)
    checkpoint = list_checkpoints(split / "checkpoints")[-1]
    assert load_checkpoint(checkpoint)["step"] == 20
    train_run(compose_config(common + ["trainer.max_steps=30", f"resume={checkpoint}"]), tmp_path / "unused")

    tag = "loss/neg_elbo" if model == "vae" else "loss/d"
    if conditional:
        assert load_checkpoint(checkpoint)["meta"]["conditional"] is True
    expected = scalar_series(read_events(whole), tag)
    # Both legs ran in this process within a second, so their event files are ordered by a
    # per-process counter (".10" sorts before ".9"), not by time: compare by step.
    resumed = sorted(scalar_series(read_events(split), tag))
    assert [s for s, _ in resumed] == [5, 10, 15, 20, 25, 30]
    assert [s for s, _ in expected] == [s for s, _ in resumed]
    for (_, a), (_, b) in zip(expected, resumed):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_family(tmp_path):
    from vaegan_runner.config.checks import ConfigError

    train_run(compose_config(["model=vae", *FAST, "trainer.max_steps=10"]), tmp_path / "vae")
    with pytest.raises(ConfigError, match="model=vae"):
        train_run(
            compose_config(["model=gan", *FAST, "trainer.max_steps=20", f"resume={tmp_path / 'vae'}"]), tmp_path / "gan"
        )


@pytest.mark.slow
def test_multirun_makes_one_directory_per_job(tmp_path):
    sweep_args = [
        "-m",
        "model=vae,gan",
        *FAST,
        "trainer.max_steps=4",
        "log.every_n_steps=2",
        "eval.every_n_steps=1000",
        "checkpoint.every_n_steps=1000",
    ]
    result = run_cli(sweep_args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_run_dir(tmp_path / "outputs" / "multirun")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    assert [j.name for j in jobs] == ["model=gan", "model=vae"]
    for job in jobs:
        assert (job / "samples.png").is_file() and list(job.glob("events.out.tfevents.*"))
    # the same sweep again with resume=auto: each job finds its finished run in the first
    # sweep's folder, and the second sweep leaves no empty folder beside it
    again = run_cli([*sweep_args, "resume=auto"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "this sweep's folder" in again.stderr and "held nothing and is removed" in again.stderr
    assert only_run_dir(tmp_path / "outputs" / "multirun") == sweep


@pytest.mark.slow
def test_image_folder_trains_through_the_dataloader(tmp_path):
    from PIL import Image

    torch.manual_seed(0)
    for label in ("cats", "dogs"):
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True)
        for i in range(40):
            pixels = (torch.rand(40, 48, 3) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{i}.png")
    (tmp_path / "images" / "cats" / "broken.png").write_bytes(b"not an image")
    not_shapes = [o for o in FAST if not o.startswith("dataset")]
    cfg = compose_config(
        [
            "model=gan",
            *not_shapes,
            "dataset=image_folder",
            f"dataset.path={tmp_path / 'images'}",
            "dataset.image_size=32",
            "dataset.channels=3",
            "dataset.num_workers=1",
            "dataset.val_fraction=0.2",
            "trainer.batch_size=16",
            "trainer.max_steps=6",
            "log.every_n_steps=3",
            "eval.every_n_steps=100",
            "eval.final_metrics=[]",  # the data path is the subject: no domain classifier for these 64 images
        ]
    )
    train_run(cfg, tmp_path / "run")
    events = read_events(tmp_path / "run")
    assert [s for s, _ in scalar_series(events, "loss/d")] == [3, 6]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["eval_images"] == 16


@pytest.mark.slow
def test_amp_on_cpu_is_ignored_with_a_warning(tmp_path, caplog):
    cfg = compose_config(["model=vae", *FAST, "trainer.amp=bf16", "trainer.max_steps=2", "log.every_n_steps=1"])
    with caplog.at_level("WARNING"):
        train_run(cfg, tmp_path)
    assert "trainer.amp=bf16 is ignored on cpu" in caplog.text


def test_sweep_directory_names_only_the_swept_keys(monkeypatch):
    from vaegan_runner.config import sweep_dir

    argv = ["-m", "model=vae,gan", "optimizer.lr=1e-3,1e-4", "trainer.max_steps=5", "dataset.root=/x/y"]
    monkeypatch.setattr("sys.argv", ["vaegan-train", *argv])
    sweep_dir.swept_keys.cache_clear()
    job = ["model=vae", "optimizer.lr=0.001", "trainer.max_steps=5", "dataset.root=/x/y"]
    assert sweep_dir.sweep_subdir(job, 3) == "model=vae,optimizer.lr=0.001"
    monkeypatch.setattr("sys.argv", ["vaegan-train", "-m", "trainer.max_steps=5"])
    sweep_dir.swept_keys.cache_clear()
    assert sweep_dir.sweep_subdir(["trainer.max_steps=5"], 0) == "job0"
