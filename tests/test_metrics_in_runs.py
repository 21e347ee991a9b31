"""Metrics in a training run (TensorBoard, metrics.json, HPARAMS, the returned value) and
the two CLIs that work on checkpoints: vaegan-eval and vaegan-sample."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from runner_utils import FAST, compose_config, read_events, run_cli, scalar_series
from vaegan_runner.cli.eval import main as eval_main
from vaegan_runner.cli.sample import main as sample_main
from vaegan_runner.train import run as train_run

pytestmark = pytest.mark.slow  # every test trains a run (module fixtures) or runs the CLI

RUN = [
    *FAST,
    "trainer.max_steps=20",
    "log.every_n_steps=10",
    "log.image_every_n_steps=20",
    "eval.every_n_steps=10",
    "checkpoint.every_n_steps=20",
]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("vae") / "run"
    results = train_run(compose_config(["model=vae", *RUN]), run_dir)
    return run_dir, results


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gan") / "run"
    results = train_run(compose_config(["model=gan", *RUN]), run_dir)
    return run_dir, results


def test_metrics_are_logged_during_training_and_at_the_end(vae_run):
    run_dir, results = vae_run
    events = read_events(run_dir)
    for value in ["domain_fid", "classifier_score", "class_coverage", "precision", "recall", "diversity", "recon_mse"]:
        assert [s for s, _ in scalar_series(events, f"metrics/{value}")] == [10, 20], value
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for value in ["domain_fid", "precision", "recall", "neg_elbo", "iwae_nll", "recon_mse", "probe_acc"]:
        assert math.isfinite(metrics[f"final/{value}"]) and results[value] == metrics[f"final/{value}"]
        assert scalar_series(events, f"final/{value}")[0][0] == 20
    stamp = metrics["metric_counts"]["domain_fid"]  # the protocol stamp: values with other stamps do not compare
    assert stamp["features"] == "domain classifier of shapes (1x28x28, 128-d)" and stamp["weights"].startswith(
        "sha256:"
    )
    assert {k: stamp[k] for k in ("resize", "samples", "reference", "reference_split", "seed")} == {
        "resize": "none",
        "samples": 128,
        "reference": 128,
        "reference_split": "held-out (128 images)",
        "seed": 0,
    }
    # KID: subsets as large as the smaller side (128 < 1000), 100 of them, an unbiased estimate
    kid = metrics["metric_counts"]["domain_kid"]
    assert {k: kid[k] for k in ("samples", "subsets", "subset_size")} == {
        "samples": 128,
        "subsets": 100,
        "subset_size": 128,
    }
    assert kid["weights"] == stamp["weights"]
    assert metrics["final/domain_kid_std"] > 0 and math.isfinite(metrics["final/domain_kid"])
    assert metrics["metric_counts"]["iwae"] == {"images": 128, "k": 4, "data": stamp["data"]}
    assert stamp["data"].startswith("pixels sha256:") and metrics["data_source"].endswith(stamp["data"])
    assert all(s["data"] == stamp["data"] for s in metrics["metric_counts"].values())  # every stamp names the data
    assert "inception_fid" in metrics["metrics_skipped"]  # CPU: skipped unless asked for
    assert 0 <= metrics["final/precision"] <= 1 and 1 - 1e-9 <= metrics["final/classifier_score"] <= 3


def test_hparams_tab_holds_settings_and_final_metrics(vae_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir, _ = vae_run
    events = read_events(run_dir)
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["model.name"].string_value == "vae"
    vae_lr = compose_config(["model=vae"]).optimizer.lr  # the VAE's own default (configs/family_optimizer/)
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(vae_lr)
    assert "final/domain_fid" in events.Tags()["scalars"]
    protocol = start.hparams["protocol/domain_fid"].string_value
    assert "features=domain classifier of shapes" in protocol and "samples=128" in protocol and "seed=0" in protocol


def test_gan_has_no_encoder_metrics(gan_run):
    run_dir, results = gan_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "final/domain_fid" in metrics and "final/recon_mse" not in metrics
    assert set(metrics["metrics_skipped"]) >= {"neg_elbo", "iwae", "recon_mse", "linear_probe"}
    assert "has no encoder" in metrics["metrics_skipped"]["recon_mse"]


def test_cli_returns_the_optimized_metric_and_train_log_holds_what_the_console_shows(tmp_path):
    result = run_cli(["model=vae", *RUN, "eval.optimized_metric=recon_mse", "hydra.run.dir=run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["final/recon_mse"] > 0
    log = (tmp_path / "run" / "train.log").read_text()
    console = result.stdout + result.stderr
    for line in ("metrics inception_fid, inception_kid not computed: skipped on CPU", "step 20: held-out eval/recon="):
        assert line in console and line in log, (line, log[-2000:])


def test_optimized_metric_the_family_cannot_compute_is_refused_before_work(tmp_path):
    result = run_cli(["model=gan", *RUN, "eval.optimized_metric=iwae_nll"], cwd=tmp_path)
    assert result.returncode == 2 and "eval.optimized_metric" in result.stderr
    assert "GAN defines no likelihood" in result.stderr and not (tmp_path / "outputs").exists()


def test_unknown_metric_name_lists_the_choices(tmp_path):
    result = run_cli(["model=vae", *RUN, "eval.metrics=[domain_fid,fid]"], cwd=tmp_path)
    assert result.returncode == 2 and "eval.metrics" in result.stderr and "precision_recall" in result.stderr


def test_vaegan_eval_prints_a_table_and_writes_json(vae_run, tmp_path, capsys):
    run_dir, _ = vae_run
    out = tmp_path / "eval.json"
    code = eval_main([str(run_dir), "metrics=domain_fid,iwae,linear_probe", "n_samples=100", "iwae_k=8", f"out={out}"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| domain_fid |" in table and "samples=100" in table and "k=8" in table
    report = json.loads(out.read_text())
    assert report["step"] == 20 and set(report["metrics"]) == {"domain_fid", "iwae_nll", "probe_acc"}
    # the same checkpoint and settings give the same numbers (seeded sampling)
    assert eval_main([str(run_dir), "metrics=domain_fid", "n_samples=100", f"out={tmp_path / 'again.json'}"]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["metrics"]["domain_fid"] == pytest.approx(report["metrics"]["domain_fid"], rel=1e-6)


def test_vaegan_eval_bad_input_is_one_error(vae_run, tmp_path, capsys):
    run_dir, _ = vae_run
    assert eval_main([str(run_dir), "metrics=nope"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
    assert eval_main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert eval_main([str(run_dir), "n_samples=many"]) == 2
    assert "n_samples: must be int" in capsys.readouterr().err


@pytest.mark.parametrize(
    "mode,shape",
    [
        ("sample", (16, 1, 28, 28)),
        ("reconstruct", (16, 1, 28, 28)),
        ("interpolate", (4 * 6, 1, 28, 28)),
        ("traverse", (4 * 6, 1, 28, 28)),
    ],
)
def test_vaegan_sample_writes_png_and_npz(vae_run, tmp_path, mode, shape):
    run_dir, _ = vae_run
    out = tmp_path / f"{mode}.png"
    n = 16 if mode in ("sample", "reconstruct") else 4
    assert sample_main([str(run_dir), f"mode={mode}", f"n={n}", "steps=6", f"out={out}"]) == 0
    arrays = np.load(out.with_suffix(".npz"))
    expected = (2 * n, *shape[1:]) if mode == "reconstruct" else shape
    assert arrays["images"].shape == expected and arrays["images"].dtype == np.uint8
    assert Image.open(out).size[0] > 28
    if mode == "sample":  # the same seed, the same images
        assert sample_main([str(run_dir), "n=16", f"out={tmp_path / 'again.png'}"]) == 0
        assert np.array_equal(np.load(tmp_path / "again.npz")["images"], arrays["images"])


def test_vaegan_sample_refuses_encoder_modes_without_an_encoder(gan_run, capsys):
    run_dir, _ = gan_run
    assert sample_main([str(run_dir), "mode=reconstruct"]) == 2
    assert "mode=reconstruct needs an encoder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setting,words",
    [
        ("n_samples=-5", ["n_samples: must be a positive integer, got -5"]),
        ("n_samples=0", ["n_samples: must be a positive integer, got 0"]),
        ("max_images=-1", ["max_images: must be a positive integer"]),
        ("iwae_k=0", ["iwae_k: must be a positive integer, got 0"]),
        ("n_samples=3", ["n_samples: must be >= 4 for domain_fid", "compare samples with held-out images"]),
        ("metrics=", ["metrics: names no metric", "domain_fid"]),
        ("dataset.image_size=64", ["dataset.image_size", "built for dataset.image_size=28, got 64"]),
    ],
)
def test_vaegan_eval_refuses_impossible_settings_before_work(vae_run, tmp_path, capsys, setting, words):
    run_dir, _ = vae_run
    out = tmp_path / "eval.json"
    assert eval_main([str(run_dir), setting, f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words) and "Traceback" not in err, err
    assert not out.exists()


def test_vaegan_eval_of_metrics_none_of_which_can_run_is_an_error(gan_run, tmp_path, capsys):
    run_dir, _ = gan_run
    assert eval_main([str(run_dir), "metrics=iwae", f"out={tmp_path / 'e.json'}"]) == 2
    assert "none of the metrics asked for can be computed here (iwae: GAN defines no likelihood)" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize(
    "out,written",
    [
        ("grids", ["grids/step_00000020-sample-n4-seed0.png", "grids/step_00000020-sample-n4-seed0.npz"]),  # new
        ("existing", ["existing/step_00000020-sample-n4-seed0.png", "existing/step_00000020-sample-n4-seed0.npz"]),
        ("x.npz", ["x.png", "x.npz"]),
        ("y.png", ["y.png", "y.npz"]),
    ],
)
def test_vaegan_sample_out_takes_a_file_or_a_folder(vae_run, tmp_path, out, written):
    run_dir, _ = vae_run
    (tmp_path / "existing").mkdir()
    assert sample_main([str(run_dir), "n=4", f"out={tmp_path / out}"]) == 0
    assert all((tmp_path / path).is_file() for path in written), sorted(tmp_path.rglob("*"))


def test_vaegan_sample_refuses_an_out_it_cannot_write(vae_run, tmp_path, capsys):
    run_dir, _ = vae_run
    assert sample_main([str(run_dir), f"out={tmp_path / 'grid.jpg'}"]) == 2
    assert "give a .png or .npz file name or a folder" in capsys.readouterr().err
    (tmp_path / "file.png").write_bytes(b"")
    assert sample_main([str(run_dir), "format=png", f"out={tmp_path / 'file.png'}"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sample_main([str(run_dir), "format=jpeg"]) == 2
    assert "format: got 'jpeg'; allowed: grid, png" in capsys.readouterr().err
    for name in ("new.png", "x.jpg"):  # a file name for a folder of files
        assert sample_main([str(run_dir), "n=2", "format=png", f"out={tmp_path / name}"]) == 2
        assert "give a folder name" in capsys.readouterr().err and not (tmp_path / name).exists()


def test_vaegan_sample_png_reconstructions_hold_no_real_inputs(vae_run, tmp_path):
    run_dir, _ = vae_run
    assert sample_main([str(run_dir), "mode=reconstruct", "n=4", "format=png", f"out={tmp_path / 'recon'}"]) == 0
    assert len(list((tmp_path / "recon").glob("*.png"))) == 4


def test_vaegan_eval_out_is_a_json_file_or_a_folder_checked_before_work(gan_run, tmp_path, capsys, monkeypatch):
    run_dir, _ = gan_run
    (tmp_path / "existing").mkdir()
    for out, written in (("existing", "existing"), ("made/", "made")):
        assert eval_main([str(run_dir), "metrics=class_coverage", "n_samples=16", f"out={tmp_path / out}"]) == 0
        assert len(list((tmp_path / written).glob("eval_step_*.json"))) == 1
    import vaegan_runner.metrics.evaluate

    monkeypatch.setattr(vaegan_runner.metrics.evaluate, "evaluate_metrics", lambda *a, **k: pytest.fail("worked"))
    assert eval_main([str(run_dir), "metrics=class_coverage", f"out={tmp_path / 'report.txt'}"]) == 2
    assert "out: the report is JSON: give a .json file name or a folder" in capsys.readouterr().err


def test_vaegan_sample_png_format_writes_one_file_per_image(vae_run, tmp_path, capsys):
    run_dir, _ = vae_run
    folder = tmp_path / "fakes"
    assert sample_main([str(run_dir), "n=5", "format=png", f"out={folder}"]) == 0
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"{i:06d}.png" for i in range(5)]
    grid = tmp_path / "grid.png"
    assert sample_main([str(run_dir), "n=5", f"out={grid}"]) == 0
    same = np.load(grid.with_suffix(".npz"))["images"]  # the same seed: the grid's images, one per file
    assert all(np.array_equal(np.array(Image.open(folder / f))[None], image) for f, image in zip(files, same))
    assert sample_main([str(run_dir), "n=5", "format=png", f"out={folder}"]) == 2  # never mixes two sets
    assert "already holds PNG files" in capsys.readouterr().err


def test_vaegan_sample_says_when_the_split_has_fewer_images_than_asked(vae_run, tmp_path, capsys):
    run_dir, _ = vae_run
    out = tmp_path / "r.png"
    assert sample_main([str(run_dir), "mode=reconstruct", "n=500", f"out={out}"]) == 0
    assert "n=500, but the held-out split has 128 images: 128 images to reconstruct" in capsys.readouterr().err
    assert np.load(out.with_suffix(".npz"))["reconstructions"].shape[0] == 128
    assert sample_main([str(run_dir), "mode=interpolate", "dataset.n_test=1"]) == 2
    assert "the held-out split has 1; use mode=sample" in capsys.readouterr().err


def test_a_metric_value_does_not_depend_on_which_metrics_ran_before_it(vae_run, tmp_path):
    """Each metric draws its noise from its own seeded stream: the negative ELBO is the same
    alone and after the IWAE bound (which draws many samples), so a checkpoint evaluated during
    training, at the end, or with vaegan-eval gives one number."""
    run_dir, _ = vae_run
    values = {}
    for names in ("neg_elbo", "iwae,domain_fid,neg_elbo"):
        out = tmp_path / f"{names}.json"
        assert eval_main([str(run_dir), f"metrics={names}", f"out={out}"]) == 0
        values[names] = json.loads(out.read_text())["metrics"]["neg_elbo"]
    assert values["neg_elbo"] == values["iwae,domain_fid,neg_elbo"]


def test_given_samples_score_like_the_run_that_made_them(vae_run, tmp_path):
    """vaegan-sample writes a run's samples (PNG files, .npz); vaegan-eval samples= scores
    them against the dataset with the same stamp and, up to the 8-bit rounding of the files,
    the same value as the run's own evaluation of those samples."""
    run_dir, _ = vae_run
    data = ["dataset.n_train=512", "dataset.n_test=128"]  # the run's shapes dataset (FAST)
    assert sample_main([str(run_dir), "n=128", "format=png", f"out={tmp_path / 'fakes'}"]) == 0
    assert sample_main([str(run_dir), "n=128", f"out={tmp_path / 'fakes.npz'}"]) == 0
    assert (
        eval_main(
            [str(run_dir), "metrics=domain_fid,precision_recall", "n_samples=128", f"out={tmp_path / 'run.json'}"]
        )
        == 0
    )
    run = json.loads((tmp_path / "run.json").read_text())
    for source in ("fakes", "fakes.npz"):
        out = tmp_path / f"{source}.json"
        args = [
            f"samples={tmp_path / source}",
            "dataset=shapes",
            *data,
            "metrics=domain_fid,precision_recall",
            f"out={out}",
        ]
        assert eval_main(args) == 0
        given = json.loads(out.read_text())
        assert given["images"] == 128 and given["metric_counts"] == run["metric_counts"]
        assert given["metrics"]["domain_fid"] == pytest.approx(run["metrics"]["domain_fid"], rel=0.02)
        assert given["metrics"]["recall"] == pytest.approx(run["metrics"]["recall"], abs=0.05)


def test_given_samples_default_to_the_metrics_that_need_no_model(vae_run, tmp_path):
    run_dir, _ = vae_run
    assert sample_main([str(run_dir), "n=64", f"out={tmp_path / 'few.npz'}"]) == 0
    out = tmp_path / "e.json"
    args = [
        f"samples={tmp_path / 'few.npz'}",
        "dataset=shapes",
        "dataset.n_train=512",
        "dataset.n_test=128",
        f"out={out}",
    ]
    assert eval_main(args) == 0
    report = json.loads(out.read_text())
    assert {"domain_fid", "domain_kid", "classifier_score", "precision", "diversity"} <= set(report["metrics"])
    assert not {"neg_elbo", "iwae", "recon_mse", "linear_probe"} & set(report["metrics_skipped"])


@pytest.mark.parametrize(
    "args,words",
    [
        (["samples={tmp}/fakes"], ["dataset: samples= needs the dataset"]),
        (["samples={tmp}/missing", "dataset=shapes"], ["samples:", "missing does not exist", "'images' of uint8"]),
        (["samples={tmp}/empty", "dataset=shapes"], ["samples:", "holds no image files"]),
        (["samples={tmp}/fakes", "dataset=mnist", "dataset.image_size=32"], ["dataset.image_size"]),
        (
            ["samples={tmp}/fakes", "dataset=shapes", "dataset.image_size=32"],
            ["are 1x28x28, the dataset's are 1x32x32"],
        ),
        (["samples={tmp}/fakes", "dataset=nope"], ["dataset:", "nope"]),
        (["samples={tmp}/fakes", "dataset=shapes", "n_samples=99"], ["holds 8 images, fewer than n_samples=99"]),
        (
            ["samples={tmp}/fakes", "dataset=shapes", "metrics=iwae"],
            ["none of the metrics", "given samples (no model) defines no likelihood"],
        ),
        (["samples={tmp}", "dataset=shapes"], ["its images are in sub-folders (fakes, three)", "one flat folder"]),
        (["samples={tmp}/fakes", "dataset=shapes", "n_samples=2"], ["n_samples: must be >= 4 for domain_fid"]),
        (
            ["samples={tmp}/three", "dataset=shapes", "metrics=domain_fid,precision_recall"],
            ["none of the metrics", "domain_fid: there are 3 samples;", "needs at least 4 of each"],
        ),
        ([], ["give a run directory or checkpoint file, or samples="]),
    ],
)
def test_given_samples_bad_input_is_one_error(vae_run, tmp_path, capsys, args, words):
    run_dir, _ = vae_run
    assert sample_main([str(run_dir), "n=8", "format=png", f"out={tmp_path / 'fakes'}"]) == 0
    assert sample_main([str(run_dir), "n=3", "format=png", f"out={tmp_path / 'three'}"]) == 0
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert eval_main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words) and "Traceback" not in err, err


def test_recon_fid_scores_reconstructions_not_samples(vae_run, tmp_path):
    """recon_fid compares the held-out images' reconstructions with the held-out split: a
    perfect reconstruction scores about 0 (samples in its place would not), blank images and a
    20-step decoder's gray blobs far more; vaegan-eval reports it with what it was computed on."""
    import torch

    from vaegan_runner.cli.saved_run import load_saved_run
    from vaegan_runner.metrics.context import MetricContext
    from vaegan_runner.metrics.registry import METRICS
    from vaegan_runner.metrics.resources import MetricResources
    from vaegan_runner.metrics.results import MetricResults

    run_dir, _ = vae_run
    saved = load_saved_run(str(run_dir), [], "cpu")
    resources = MetricResources(saved.data, saved.run.eval, torch.device("cpu"), lambda m: None)

    def recon_fid(reconstruct=None):
        if reconstruct is not None:
            saved.family.reconstruct = reconstruct
        with torch.no_grad():
            return METRICS["recon_fid"].compute(MetricContext(saved.family, resources, 128, None, MetricResults()))

    trained = recon_fid()["recon_fid"]
    perfect = recon_fid(lambda x, y: x)["recon_fid"]
    blank = recon_fid(lambda x, y: torch.full_like(x, -1.0 if saved.family.pixel_range == "symmetric" else 0.0))
    assert perfect < 1e-3 and min(trained, blank["recon_fid"]) > 100
    out = tmp_path / "eval.json"
    assert eval_main([str(run_dir), "metrics=recon_fid", f"out={out}"]) == 0
    report = json.loads(out.read_text())
    assert report["metrics"]["recon_fid"] == pytest.approx(trained, rel=1e-6)
    assert {k: report["metric_counts"]["recon_fid"][k] for k in ("images", "reference")} == {
        "images": 128,
        "reference": 128,
    }


def test_vaegan_eval_prior_gmm_samples_from_a_mixture_fitted_to_the_codes(vae_run, tmp_path):
    """prior=gmm changes the samples (so their FID), not the likelihood, and says so in the report
    and in every sample metric's stamp; its default report does not overwrite the model prior's."""
    run_dir, _ = vae_run
    reports = {}
    for prior in ("model", "gmm"):
        out = tmp_path / prior
        settings = [f"prior={prior}"] + (["prior_components=3"] if prior == "gmm" else [])
        assert eval_main([str(run_dir), *settings, "metrics=domain_fid,neg_elbo", f"out={out}/"]) == 0
        (report,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
        reports[prior] = (report, next(out.glob("*.json")).name)
    (model, model_name), (gmm, gmm_name) = reports["model"], reports["gmm"]
    assert gmm_name == model_name.replace(".json", "_gmm3.json")
    assert gmm["metrics"]["neg_elbo"] == model["metrics"]["neg_elbo"]
    assert gmm["metrics"]["domain_fid"] != model["metrics"]["domain_fid"]
    assert gmm["prior"].startswith("gmm: 3 full-covariance Gaussians fitted by EM to 512 training codes")
    assert gmm["metric_counts"]["domain_fid"]["prior"] == gmm["prior"] and "prior" not in model
    assert "prior" not in model["metric_counts"]["domain_fid"] and "prior" not in gmm["metric_counts"]["neg_elbo"]


def test_vaegan_sample_prior_gmm_writes_samples_and_refuses_what_it_cannot_do(vae_run, gan_run, tmp_path, capsys):
    run_dir, _ = vae_run
    assert sample_main([str(run_dir), "prior=gmm", "prior_components=2", "n=9", f"out={tmp_path}/"]) == 0
    saved = np.load(tmp_path / "step_00000020-sample-gmm2-n9-seed0.npz")
    assert saved["images"].shape[0] == 9 and saved["z"].shape[0] == 9
    assert sample_main([str(run_dir), "n=9", f"out={tmp_path}/"]) == 0
    assert not np.array_equal(np.load(tmp_path / "step_00000020-sample-n9-seed0.npz")["z"], saved["z"])
    capsys.readouterr()
    for target, settings, words in [
        (gan_run[0], ["prior=gmm"], "model=gan has no encoder"),
        (run_dir, ["prior=gmm", "mode=reconstruct"], "mode=reconstruct decodes the codes of held-out images"),
        (gan_run[0], ["prior=gmm", "mode=codes"], "mode=codes draws InfoGAN's categories"),
        (run_dir, ["prior=fitted"], "prior: "),
        (run_dir, ["prior_components=5"], "sizes the mixture of prior=gmm"),
        (run_dir, ["prior=gmm", "prior_components=0"], "must be between 1 and the 512 training images"),
    ]:
        assert sample_main([str(target), *settings, f"out={tmp_path}/x.png"]) == 2
        assert words in capsys.readouterr().err
    assert eval_main([str(gan_run[0]), "prior=gmm", f"out={tmp_path}/e.json"]) == 2
    assert "prior=gmm fits a mixture to the codes" in capsys.readouterr().err
    assert eval_main([str(run_dir), "prior=gmm", "metrics=neg_elbo,recon_fid", f"out={tmp_path}/e.json"]) == 2
    assert "none of the metrics neg_elbo, recon_fid scores samples" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()
