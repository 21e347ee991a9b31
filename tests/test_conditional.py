"""Class-conditional models (``model.conditional=true``): where the label goes, what it does,
sampling by class, the metrics that check it, and the inputs a hurried user gets wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from runner_utils import FAST, SHAPES_CLASSES, compose_config, read_events, run_cli
from vaegan_runner.cli.eval import main as eval_main
from vaegan_runner.cli.sample import main as sample_main
from vaegan_runner.cli.saved_run import load_saved_run
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.data.pixels import to_pixels
from vaegan_runner.metrics.conditional import intra_fid, label_accuracy
from vaegan_runner.models import family_class, family_names
from vaegan_runner.train import run as train_run
from vaegan_runner.training.checkpoint import list_checkpoints, load_checkpoint

# model.conditional=false or true (a conditional_only family, the ssaae, is always true)
SWITCHABLE = [name for name in family_names() if not family_class(name).conditional_only]


def takes_labels(model: str) -> set[str]:
    """The networks a family's class says the label reaches (``label_networks``: the networks
    its literature gives the label to; the family files say why)."""
    return set(family_class(model).label_networks)


def batch(family, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, family.channels, family.image_size, family.image_size)
    return to_pixels((x * 255).to(torch.uint8), family.pixel_range), torch.arange(n) % SHAPES_CLASSES


def record_inputs(family) -> tuple[dict[str, list[torch.Tensor]], list]:
    """Every tensor that enters a layer of each network, call by call, as the phases run (layer
    hooks see the label wherever it goes in: a one-hot input, an embedding lookup); and the
    hook handles."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in family.networks()}
    handles = []
    for name, net in family.networks().items():
        for layer in net.modules():
            if not list(layer.children()):

                def hook(_, args, name=name):
                    seen[name].extend(a.detach().clone() for a in args if isinstance(a, torch.Tensor))

                handles.append(layer.register_forward_pre_hook(hook))
    return seen, handles


@pytest.mark.parametrize("model", family_names())
def test_the_label_networks_a_family_declares_are_its_own(model):
    family = family_class(model)
    assert set(family.label_networks) <= set(family.network_names)


@pytest.mark.parametrize("model", family_names())
def test_the_label_reaches_exactly_the_networks_that_should_take_it(model, build_family):
    _, family = build_family(model, "model.conditional=true")
    assert_label_reaches(family, model, takes_labels(model))


def test_the_aae_code_discriminator_reads_the_label_unless_told_not_to(build_family):
    """``model.label_to_discriminator``: true by default when conditional, D(z, y); false
    gives the paper's D(z); the encoder is label-free either way."""
    run, family = build_family("aae", "model.conditional=true")
    assert run.model.label_to_discriminator is True
    _, family = build_family("aae", "model.conditional=true", "model.label_to_discriminator=false")
    assert_label_reaches(family, "aae", {"decoder"})
    run, _ = build_family("aae")
    assert run.model.label_to_discriminator is False
    for encoder_type in ("deterministic", "gaussian"):  # and the gradient penalty's critic takes it too
        _, family = build_family(
            "aae",
            "model.conditional=true",
            "model.label_to_discriminator=true",
            "model.loss=wgan-gp",
            f"model.encoder_type={encoder_type}",
        )
        x, y = batch(family)
        losses, logs = family.phases[1].losses(x, y, 0)
        assert torch.isfinite(losses["discriminator"]) and "gp" in logs


def test_a_conditional_aae_checkpoint_from_before_the_option_keeps_the_papers_discriminator(build_family):
    """Checkpoints written before ``label_to_discriminator`` existed hold D(z): they load with
    the key false, so the network built matches the weights saved."""
    import copy

    from omegaconf import OmegaConf

    from vaegan_runner.run_schema import validate
    from vaegan_runner.training.checkpoint_migrations import with_added_keys

    run, _ = build_family("aae", "model.conditional=true")
    old = copy.deepcopy(run.resolved)
    del old["model"]["label_to_discriminator"]
    loaded = validate(OmegaConf.create(with_added_keys(old)))
    assert loaded.model.label_to_discriminator is False and loaded.model.conditional is True


def test_the_aae_code_discriminator_without_labels_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="model.label_to_discriminator: the code discriminator can only read"):
        train_run(compose_config([*FAST, "model=aae", "model.label_to_discriminator=true"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def assert_label_reaches(family, model: str, takes_labels: set[str]) -> None:
    """Run every phase twice on the same images and noise with two different label batches:
    a network that takes the label sees it (and its output moves with it); a network that
    should not take it sees exactly the same inputs both times."""
    x, y = batch(family)
    runs = []
    for labels in (y, (y + 1) % SHAPES_CLASSES):
        seen, handles = record_inputs(family)
        torch.manual_seed(0)
        for phase in family.phases:
            phase.losses(x, labels, 0)
        runs.append(seen)
        for handle in handles:
            handle.remove()
    for name, net in family.networks().items():
        first, second = runs[0][name], runs[1][name]
        assert first and len(first) == len(second), f"{model}: {name} never ran"
        declared = getattr(net, "takes_labels", False) or bool(getattr(net, "num_classes", None))
        moved = any(not torch.equal(a, b) for a, b in zip(first, second))
        assert declared == moved == (name in takes_labels), f"{model}: {name} {declared=} {moved=}"


@pytest.mark.parametrize("model", family_names())
def test_a_conditional_family_draws_what_the_label_asks(model, build_family):
    _, family = build_family(model, "model.conditional=true")
    family.eval()
    z = family.sample_latent(6)
    a = family.generate(z, torch.zeros(6, dtype=torch.long))
    b = family.generate(z, torch.ones(6, dtype=torch.long))
    assert a.shape == b.shape == (6, family.channels, family.image_size, family.image_size)
    assert not torch.equal(a, b)  # the same codes, another class
    assert torch.equal(family.generate(z), family.generate(z, family.sample_labels(6)))  # balanced by default
    assert family.sample_labels(7).tolist() == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("model", SWITCHABLE)
def test_unconditional_families_keep_their_networks_and_ignore_labels(model, build_family):
    _, plain = build_family(model)
    _, conditional = build_family(model, "model.conditional=true")
    assert not plain.conditional and plain.sample_labels(4) is None
    added = set(conditional.state_dict()) - set(plain.state_dict())
    assert added and not any(".decoder.decoder." in k or "embed" in k for k in plain.state_dict())
    plain.eval()
    z = plain.sample_latent(4)
    torch.manual_seed(0)
    assert torch.equal(plain.generate(z), plain.generate(z, torch.ones(4, dtype=torch.long)))


def test_label_accuracy_and_intra_fid_math():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    assert label_accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(400, 3, generator=gen)
    real_labels = torch.arange(400) % 2
    real[real_labels == 1] += 5.0
    fake, fake_labels = real.clone(), real_labels.clone()
    matched, used = intra_fid(fake, fake_labels, real, real_labels, 2, min_count=4)
    swapped, _ = intra_fid(fake, 1 - fake_labels, real, real_labels, 2, min_count=4)
    assert used == 2 and matched == pytest.approx(0.0, abs=1e-6) and swapped > 70  # 3 dims * 5^2 shift, twice
    assert np.isnan(intra_fid(fake[:3], fake_labels[:3], real, real_labels, 2, min_count=4)[0])


# --- a conditional run, end to end ----------------------------------------------------------
COND_RUN = [
    *FAST,
    "model=vae",
    "model.conditional=true",
    "trainer.max_steps=12",
    "eval.every_n_steps=6",
    "log.image_every_n_steps=6",
    "eval.metrics=[label_accuracy]",
    "eval.final_metrics=[label_accuracy,intra_fid,domain_fid,class_coverage]",
    "eval.final_n_samples=60",
]


@pytest.fixture(scope="session")  # session: kept when the tiers split this file
def cond_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cond") / "run"
    results = train_run(compose_config(COND_RUN), run_dir)
    return run_dir, results


def test_a_conditional_run_scores_its_labels_and_shows_a_grid_per_class(cond_run):
    run_dir, results = cond_run
    assert 0.0 <= results["label_accuracy"] <= 1.0 and results["intra_fid"] >= 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["metric_counts"]["label_accuracy"]["samples"] == 60
    assert metrics["metric_counts"]["intra_fid"]["classes"] == SHAPES_CLASSES
    events = read_events(run_dir)
    assert "samples_by_class" in events.Tags()["images"] and "metrics/label_accuracy" in events.Tags()["scalars"]
    assert load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])["meta"]["num_classes"] == SHAPES_CLASSES


def test_vaegan_sample_by_label_by_class_and_style_transfer(cond_run, tmp_path):
    run_dir, _ = cond_run
    assert sample_main([str(run_dir), "label=2", "n=5", f"out={tmp_path / 'twos.png'}"]) == 0
    assert np.load(tmp_path / "twos.npz")["labels"].tolist() == [2] * 5
    assert sample_main([str(run_dir), "mode=classes", "n=4", f"out={tmp_path / 'classes.png'}"]) == 0
    assert np.load(tmp_path / "classes.npz")["images"].shape[0] == SHAPES_CLASSES * 4
    assert sample_main([str(run_dir), "mode=transfer", "n=3", f"out={tmp_path / 'transfer.png'}"]) == 0
    assert np.load(tmp_path / "transfer.npz")["images"].shape[0] == 3 * (SHAPES_CLASSES + 1)
    saved = load_saved_run(str(run_dir), [], "cpu")
    z = saved.family.sample_latent(5, torch.Generator().manual_seed(0))
    expected = saved.family.generate(z, torch.full((5,), 2))
    written = np.load(tmp_path / "twos.npz")["images"]
    assert np.abs(written.astype(float) - (expected.numpy() * 255)).max() <= 1  # the same images, by seed


@pytest.mark.parametrize(
    "args,words",
    [
        (["label=3"], ["label: must be a class of the dataset, 0..2, got 3"]),
        (["label=-1"], ["label: must be a class of the dataset"]),
        (["label=1", "mode=reconstruct"], ["label= picks the class of mode=sample"]),
    ],
)
def test_vaegan_sample_refuses_labels_it_cannot_draw(cond_run, tmp_path, capsys, args, words):
    run_dir, _ = cond_run
    assert sample_main([str(run_dir), *args, f"out={tmp_path / 'x.png'}"]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="session")  # session: kept when the tiers split this file
def plain_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    overrides = [*FAST, "model=gan", "trainer.max_steps=2", "eval.final_metrics=[class_coverage]"]
    train_run(compose_config(overrides), run_dir)
    return run_dir


@pytest.mark.parametrize("arg,key", [("label=1", "label"), ("mode=classes", "mode"), ("mode=transfer", "mode")])
def test_label_settings_on_an_unconditional_run_are_refused(plain_run, tmp_path, capsys, arg, key):
    assert sample_main([str(plain_run), arg, f"out={tmp_path / 'x.png'}"]) == 2
    err = capsys.readouterr().err
    assert f"{key}: " in err and "trained without labels (model.conditional=false)" in err, err
    assert not list(tmp_path.iterdir())


def test_label_metrics_of_an_unconditional_run_are_skipped_with_the_reason(plain_run, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert eval_main([str(plain_run), "metrics=label_accuracy,class_coverage", "n_samples=16", f"out={out}"]) == 0
    report = json.loads(out.read_text())
    assert "class_coverage" in report["metrics"]
    assert "not class-conditional" in report["metrics_skipped"]["label_accuracy"]


def test_a_conditional_model_on_unlabelled_images_is_refused_before_training(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(8):
        Image.fromarray(np.full((16, 16), 30 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    args = ["dataset=image_folder", f"dataset.path={folder}", "dataset.image_size=16", "model=gan"]
    args += ["model.conditional=true", "trainer.max_steps=2", "log.progress_bar=false", "hydra.run.dir=run"]
    result = run_cli(args, cwd=tmp_path, timeout=240)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.conditional: true needs class labels" in result.stderr and "one sub-folder per class" in result.stderr
    assert not (tmp_path / "run").exists()


def test_resuming_with_another_conditional_setting_is_refused(cond_run, tmp_path):
    run_dir, _ = cond_run
    # (the CVAE's latent default follows model.conditional, so the message names both keys)
    with pytest.raises(ConfigError, match="conditional=True, but this run has .*model.conditional=False"):
        train_run(compose_config([*COND_RUN, "model.conditional=false", f"resume={run_dir}"]), tmp_path / "again")


def test_a_checkpoint_from_before_conditional_models_loads_as_unconditional(plain_run, tmp_path):
    """Checkpoints written before ``model.conditional`` existed lack the key: they load as
    unconditional runs."""
    from vaegan_runner.training.checkpoint import Checkpoint
    from vaegan_runner.training.resume import run_identity

    state = load_checkpoint(list_checkpoints(plain_run / "checkpoints")[-1])
    current = run_identity(state["config"])
    del state["config"]["model"]["conditional"], state["config"]["model"]["auxiliary_weight"]
    del state["config"]["dataset"]["labelled"]
    assert run_identity(Checkpoint.from_dict(state).config) == current  # resume=auto still finds it
    del state["meta"]["conditional"], state["meta"]["num_classes"]
    old = tmp_path / "old" / "checkpoints"
    old.mkdir(parents=True)
    torch.save(state, old / "step_00000002.pt")
    saved = load_saved_run(str(old.parent), [], "cpu")
    assert saved.run.model.conditional is False and not saved.family.conditional


def run_label_transfer(run_dir, monkeypatch) -> None:
    import runpy
    import sys

    from runner_utils import REPO

    monkeypatch.setattr(sys, "argv", ["label_transfer.py", str(run_dir), "--images", "60"])
    runpy.run_path(str(REPO / "scripts" / "label_transfer.py"), run_name="__main__")


def test_the_label_transfer_script_scores_a_conditional_run(cond_run, monkeypatch, capsys):
    import re

    run_label_transfer(cond_run[0], monkeypatch)
    found = re.search(
        r"(\d+) held-out codes .* own label: ([\d.]+) obeyed; with another label: ([\d.]+)", capsys.readouterr().out
    )
    assert found and int(found[1]) == 60 and 0 <= float(found[2]) <= 1 and 0 <= float(found[3]) <= 1


def test_the_label_transfer_script_refuses_an_unconditional_run(plain_run, monkeypatch):
    with pytest.raises(SystemExit, match="not a class-conditional run"):
        run_label_transfer(plain_run, monkeypatch)


def label_obedience(run_dir, n: int = 600) -> tuple[float, float]:
    """(intra-FID of the samples with the labels they were drawn for, with every label shifted
    to the next class), in the domain classifier's features: a model that obeys its label is
    much closer to the real images of the right class than of the wrong one; for a model that
    ignores it the two are equal. Blur-tolerant, unlike the classifier's argmax."""
    from vaegan_runner.metrics.context import MetricContext
    from vaegan_runner.metrics.resources import MetricResources
    from vaegan_runner.metrics.results import MetricResults

    saved = load_saved_run(str(run_dir), [], "cpu")
    resources = MetricResources(saved.data, saved.run.eval, torch.device("cpu"), lambda m: None)
    ctx = MetricContext(saved.family, resources, n, None, MetricResults())
    with torch.no_grad():
        fake = ctx.domain_samples()[0]
    real, real_labels = resources.domain_reference()[0], resources.domain_reference_labels()
    y, k = ctx.sample_labels, saved.family.num_classes
    matched, _ = intra_fid(fake, y, real, real_labels, k, min_count=4)
    shifted, _ = intra_fid(fake, (y + 1) % k, real, real_labels, k, min_count=4)
    return matched, shifted


@pytest.mark.slow
@pytest.mark.parametrize("model", SWITCHABLE)
def test_a_conditional_run_learns_to_obey_its_label(model, tmp_path):
    """On shapes (ellipse, rectangle, triangle), after a short run the samples drawn for a class
    are far closer to that class's real images than to the next class's. Measured at 800 steps
    (matched / shifted intra-FID): GAN 0.43, VAE 0.56, VAE-GAN 0.47 (0.63 without ACGAN's class
    loss, the default before), BiGAN 0.70, AAE 0.76 with a 2-d code. The supervised AAE's
    decoder reads the class only once the prior-matching has pushed it out of the code; with
    the default 8-d code that takes longer than this test
    (ratio 1.01 at 800 steps with the paper's D(z), 0.96 with D(z, y), the default now), so the
    AAE runs here with a 2-d code."""
    overrides = [
        *FAST,
        f"model={model}",
        "model.conditional=true",
        "dataset.n_train=2048",
        "dataset.n_test=512",
        "model.net.width=16",
        "trainer.batch_size=64",
        "trainer.max_steps=800",
        "eval.every_n_steps=10000",
        "log.image_every_n_steps=10000",
        "checkpoint.every_n_steps=10000",
        "eval.final_metrics=[label_accuracy]",
        "eval.final_n_samples=60",
        "eval.optimized_metric=label_accuracy",
        *(["model.latent_dim=2"] if model == "aae" else []),
    ]
    train_run(compose_config(overrides), tmp_path / "run")
    matched, shifted = label_obedience(tmp_path / "run")
    assert matched < 0.8 * shifted, (matched, shifted)  # a model that ignores the label: about 1


def test_acgan_adds_a_class_loss_to_d_and_g(build_family):
    _, family = build_family("gan", "model.conditional=true", "model.auxiliary_weight=1.0")
    x, y = batch(family)
    torch.manual_seed(0)
    d_losses, d_logs = family.phases[0].losses(x, y, 0)
    g_losses, g_logs = family.phases[1].losses(x, y, 0)
    # an untrained class head: CE near log(3) on reals and fakes, added to each network's loss
    assert d_logs["d_class"].item() == pytest.approx(np.log(SHAPES_CLASSES), rel=0.2)
    assert g_losses["generator"].item() == pytest.approx((g_logs["g"] + g_logs["g_class"]).item())
    assert d_losses["discriminator"].item() > d_logs["d"].item()


def test_the_conditional_vaegan_takes_acgans_class_loss_by_default_and_old_checkpoints_do_not(build_family):
    """``auxiliary_weight: ${if_conditional:1.0,0.0}``: on for conditional runs, off otherwise
    (where it would be refused); a conditional checkpoint from before the default changed
    lacks the key and loads with 0, the loss it was trained with."""
    import copy

    from omegaconf import OmegaConf

    from vaegan_runner.run_schema import validate
    from vaegan_runner.training.checkpoint_migrations import with_added_keys

    run, family = build_family("vaegan", "model.conditional=true")
    assert run.model.auxiliary_weight == 1.0
    x, y = batch(family)
    assert "d_class" in family.phases[0].losses(x, y, 0)[1]
    assert build_family("vaegan")[0].model.auxiliary_weight == 0.0
    assert build_family("vaegan", "model.conditional=true", "model.auxiliary_weight=0")[0].model.auxiliary_weight == 0
    old = copy.deepcopy(run.resolved)
    del old["model"]["auxiliary_weight"]
    assert validate(OmegaConf.create(with_added_keys(old))).model.auxiliary_weight == 0.0


def test_vaegan_acgan_adds_a_class_loss_to_d_and_the_decoder_only(build_family):
    _, family = build_family("vaegan", "model.conditional=true", "model.auxiliary_weight=2.0")
    x, y = batch(family)
    torch.manual_seed(0)
    losses, logs = family.phases[0].losses(x, y, 0)
    # an untrained class head: CE near log(3), times the weight, on reals (D) and fakes (decoder)
    assert logs["d_class"].item() == pytest.approx(2 * np.log(SHAPES_CLASSES), rel=0.2)
    assert logs["g_class"].item() == pytest.approx(2 * np.log(SHAPES_CLASSES), rel=0.2)
    cfg = family.cfg
    assert losses["discriminator"].item() == pytest.approx((logs["d"] + logs["d_class"]).item())
    decoder = cfg.gamma * logs["feature_rec"] + logs["g"] + logs["g_class"]
    assert losses["decoder"].item() == pytest.approx(decoder.item())
    assert losses["encoder"].item() == pytest.approx((cfg.beta * logs["kl"] + logs["feature_rec"]).item())


@pytest.mark.parametrize("model", ["gan", "vaegan"])
def test_acgan_without_labels_is_refused(tmp_path, model):
    with pytest.raises(ConfigError, match="model.auxiliary_weight: ACGAN's class loss needs labels"):
        train_run(compose_config([*FAST, f"model={model}", "model.auxiliary_weight=1.0"]), tmp_path / "run")


# --- the semi-supervised AAE and dataset.labelled ---------------------------------------------
def shapes_data(*overrides: str):
    from vaegan_runner.data import load_data
    from vaegan_runner.run_schema import validate

    run = validate(compose_config([*FAST, "model=ssaae", "trainer.max_steps=2", *overrides]))
    return load_data(run.dataset, torch.device("cpu"))


def test_the_labelled_subset_is_balanced_fixed_and_from_the_training_split():
    data = shapes_data("dataset.labelled=30")
    again = shapes_data("dataset.labelled=30")
    subset = data.labelled
    assert torch.bincount(subset.labels, minlength=SHAPES_CLASSES).tolist() == [10, 10, 10]
    assert torch.equal(subset.images, again.labelled.images)  # the same images on every load
    train = data.train.images.flatten(1)
    assert all((train == image.flatten()).all(dim=1).any() for image in subset.images)


def test_training_batches_hide_every_label_but_the_subsets():
    from vaegan_runner.data import UNLABELLED, training_batches

    data = shapes_data("dataset.labelled=30")
    batches = list(training_batches(data, 32, epoch=1, seed=5))
    assert len(batches) == data.train.num_batches(32)
    images, labels = batches[3]
    assert images.shape[0] == 32 + 30 and (labels[:32] == UNLABELLED).all() and (labels[32:] >= 0).all()
    resumed = list(training_batches(data, 32, epoch=1, seed=5, start=3))  # a resumed run: the same batches
    assert torch.equal(resumed[0][0], images) and torch.equal(resumed[0][1], labels)
    plain = shapes_data()
    assert plain.labelled is None
    first = next(training_batches(plain, 32, epoch=1, seed=5))
    assert first[0].shape[0] == 32 and (first[1] >= 0).all()


def test_the_classification_phase_learns_from_labelled_images_only(build_family, phase_runner):
    run, family = build_family("ssaae", "model.net.arch=mlp", "model.net.hidden=[64]")
    runner = phase_runner(run, family)
    classify = next(p for p in family.phases if p.name == "classification")
    x, y = batch(family, 12)
    hidden = torch.full_like(y, -1)
    losses, _ = classify.losses(x, hidden, 0)
    assert losses["encoder"].item() == 0.0  # no label, no loss
    for _ in range(60):
        logs = runner.run(classify, x, torch.cat([hidden[:6], y[6:]]), 0)
    assert logs["acc/train_class"].item() == 1.0  # the six labelled images, memorised
    assert (family.classify(x[6:]).argmax(dim=1) == y[6:]).all()


def test_input_noise_corrupts_the_encoders_input_in_training_only(build_family):
    from vaegan_runner.training.checkpoint_migrations import with_added_keys

    run, clean = build_family("ssaae", "model.net.arch=mlp", "model.net.hidden=[64]")
    assert run.model.input_noise == 0.0  # the default: the paper's model
    _, noisy = build_family("ssaae", "model.net.arch=mlp", "model.net.hidden=[64]", "model.input_noise=0.3")
    noisy.load_state_dict(clean.state_dict())
    x, y = batch(clean, 12)
    for a, b in zip(clean.training_codes(x), clean.codes(x), strict=True):
        assert torch.equal(a, b)  # input_noise=0: training sees the clean image
    moved = [(a - b).abs().mean().item() for a, b in zip(noisy.training_codes(x), noisy.codes(x), strict=True)]
    assert min(moved) > 1e-3, moved
    assert torch.equal(noisy.classify(x), clean.classify(x))  # held-out images are encoded clean
    clean_recon, _ = next(p for p in clean.phases if p.name == "reconstruction").losses(x, y, 0)
    torch.manual_seed(0)
    first, _ = next(p for p in noisy.phases if p.name == "reconstruction").losses(x, y, 0)
    torch.manual_seed(0)
    again, _ = next(p for p in noisy.phases if p.name == "reconstruction").losses(x, y, 0)
    assert first["decoder"].item() == again["decoder"].item() != clean_recon["decoder"].item()  # seeded noise
    old = dict(run.resolved)
    old["model"] = {k: v for k, v in run.resolved["model"].items() if k != "input_noise"}
    assert with_added_keys(old)["model"]["input_noise"] == 0.0  # checkpoints from before the key: clean
    assert with_added_keys(run.resolved)["model"]["input_noise"] == 0.0


@pytest.mark.parametrize(
    "overrides,key,words",
    [
        (["model=ssaae", "dataset.labelled=31"], "dataset.labelled", "must be a positive multiple of the 3 classes"),
        (["model=ssaae", "dataset.labelled=0"], "dataset.labelled", "must be a positive multiple"),
        (["model=ssaae", "dataset.labelled=3000"], "dataset.labelled", "is more than the 512 training images"),
        (["model=gan", "dataset.labelled=30"], "dataset.labelled", "only a family that learns a classifier"),
        (["model=ssaae", "model.conditional=false"], "model.conditional", "always reads a class"),
        (["model=ssaae", "model.loss=wgan-gp"], "model.loss", "take no gradient penalty"),
        (["model=ssaae", "model.input_noise=-0.1"], "model.input_noise", ">= 0"),
    ],
)
def test_bad_semi_supervised_settings_are_refused(tmp_path, overrides, key, words):
    with pytest.raises(ConfigError) as err:
        train_run(compose_config([*FAST, *overrides, "trainer.max_steps=2"]), tmp_path / "run")
    assert err.value.key == key and words in str(err.value), err.value


@pytest.mark.slow
def test_a_semi_supervised_run_classifies_held_out_shapes_from_300_labels(tmp_path):
    overrides = [
        *FAST,
        "model=ssaae",
        "dataset.labelled=300",
        "dataset.n_train=2048",
        "dataset.n_test=256",
        "trainer.batch_size=64",
        "model.net.hidden=[256,256]",
        "model.discriminator.hidden=[256,256]",
        "trainer.max_steps=800",
        "eval.every_n_steps=10000",
        "log.image_every_n_steps=10000",
        "eval.final_metrics=[classifier_error]",
        "eval.optimized_metric=classifier_error",
    ]
    results = train_run(compose_config(overrides), tmp_path / "run")
    assert results["classifier_error"] < 0.5, results  # chance: 2/3 wrong


def test_intra_fid_with_too_few_samples_per_class_is_skipped_with_the_reason(cond_run, tmp_path):
    run_dir, _ = cond_run
    out = tmp_path / "e.json"
    assert eval_main([str(run_dir), "metrics=intra_fid,label_accuracy", "n_samples=8", f"out={out}"]) == 0
    report = json.loads(out.read_text())
    assert "label_accuracy" in report["metrics"] and "intra_fid" not in report["metrics"]
    assert "no class has 4 samples" in report["metrics_skipped"]["intra_fid"]
    assert "draw at least 12 samples" in report["metrics_skipped"]["intra_fid"]


def test_png_sets_of_class_modes_hold_generated_images_only(cond_run, tmp_path):
    run_dir, _ = cond_run
    assert sample_main([str(run_dir), "mode=transfer", "n=2", "format=png", f"out={tmp_path / 't'}"]) == 0
    assert len(list((tmp_path / "t").glob("*.png"))) == 2 * SHAPES_CLASSES  # no held-out input among them
    assert sample_main([str(run_dir), "mode=classes", "n=2", f"out={tmp_path / 'c.png'}"]) == 0
    assert np.load(tmp_path / "c.npz")["labels"].tolist() == [0, 0, 1, 1, 2, 2]


def test_a_labelled_set_changed_on_resume_is_refused(tmp_path):
    first = [*FAST, "model=ssaae", "model.net.hidden=[32]", "dataset.labelled=30", "trainer.max_steps=2"]
    train_run(compose_config(first), tmp_path / "run")
    with pytest.raises(ConfigError, match="dataset.labelled=30, but this run has dataset.labelled=60"):
        train_run(compose_config([*first, "dataset.labelled=60", f"resume={tmp_path / 'run'}"]), tmp_path / "b")


def test_resuming_with_another_setting_says_which_one_changed(tmp_path, caplog):
    """An explicit resume may change a setting that keeps the networks' shapes (here the
    semi-supervised AAE's input noise, in a checkpoint from before the key existed, which loads
    with 0): the objective changes, and the log names the setting and both values."""
    import logging

    first = [*FAST, "model=ssaae", "model.net.hidden=[32]", "dataset.labelled=30", "trainer.max_steps=2"]
    train_run(compose_config(first), tmp_path / "run")
    path = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    state = load_checkpoint(path)
    del state["config"]["model"]["input_noise"]
    torch.save(state, path)
    noisy = [*first, "model.input_noise=0.3"]
    with caplog.at_level(logging.WARNING, logger="vaegan_runner"):
        train_run(compose_config([*noisy, "trainer.max_steps=3", f"resume={tmp_path / 'run'}"]), tmp_path / "b")
    changed = [r.getMessage() for r in caplog.records if "not trained with" in r.getMessage()]
    assert changed == [
        "resuming with settings the checkpoint was not trained with: "
        "model.input_noise is 0.0 in the checkpoint and 0.3 here"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vaegan_runner"):  # the same settings: nothing to say
        train_run(compose_config([*noisy, "trainer.max_steps=4", f"resume={tmp_path / 'run'}"]), tmp_path / "c")
    assert not [r for r in caplog.records if "not trained with" in r.getMessage()]


def test_dataset_labelled_on_a_family_without_a_classifier_is_refused_before_the_count(tmp_path):
    with pytest.raises(ConfigError, match="only a family that learns a classifier"):
        train_run(compose_config([*FAST, "model=vae", "dataset.labelled=31", "trainer.max_steps=2"]), tmp_path / "r")
