"""Every config composes and validates; bad configs fail with a message naming the key."""

from __future__ import annotations

import itertools

import pytest

from runner_utils import CONFIGS, compose_config, run_cli
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.models import family_class, family_names
from vaegan_runner.run_schema import validate

MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONFIGS / "dataset").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONFIGS / "optimizer").glob("*.yaml"))


def test_every_model_yaml_has_a_family_module_and_back():
    built_in = [name for name in family_names() if family_class(name).__module__.startswith("vaegan_runner.models.")]
    assert MODELS == built_in  # families that other packages install have their YAML there


PER_DATASET = {tuple(p.stem.split("_", 1)) for p in (CONFIGS / "family_dataset").glob("*.yaml")}
# Every model with every dataset (at the default optimizer) and with every optimizer (on MNIST):
# the dataset's and the optimizer's files each meet only the model's (family_dataset/,
# family_optimizer/); where a family has its own file for a dataset, which can set optimizer
# keys too, every optimizer with it.
COMBINATIONS = [
    (model, dataset, optimizer)
    for model, dataset, optimizer in itertools.product(MODELS, DATASETS, OPTIMIZERS)
    if optimizer == "adam" or dataset == "mnist" or (model, dataset) in PER_DATASET
]


def test_the_combinations_cover_every_file_and_every_per_dataset_file_with_every_optimizer():
    assert {c[0] for c in COMBINATIONS} == set(MODELS) and {c[1] for c in COMBINATIONS} == set(DATASETS)
    assert {c[2] for c in COMBINATIONS} == set(OPTIMIZERS) and PER_DATASET
    for model, dataset in PER_DATASET:
        assert {o for m, d, o in COMBINATIONS if (m, d) == (model, dataset)} == set(OPTIMIZERS)


@pytest.mark.parametrize("model,dataset,optimizer", COMBINATIONS)
def test_every_combination_composes_and_validates(model, dataset, optimizer):
    overrides = [f"model={model}", f"dataset={dataset}", f"optimizer={optimizer}"]
    if dataset == "image_folder":
        overrides.append("dataset.path=/some/images")
    run = validate(compose_config(overrides))
    assert run.model.name == model and run.dataset.name == dataset and run.optimizer.name == optimizer


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml")))
def test_experiments_compose(name):
    validate(compose_config([f"experiment={name}"]))


def test_debug_preset_composes():
    run = validate(compose_config(["debug=default"]))
    assert run.trainer.max_steps == 20 and run.device == "cpu"


@pytest.mark.parametrize(
    "overrides,key,words",
    [
        (["optimizer.lr=-1"], "optimizer.lr", "> 0"),
        (["trainer.batch_size=0"], "trainer.batch_size", "> 0"),
        (["dataset=shapes", "dataset.image_size=30"], "dataset.image_size", "28, 32"),
        (["trainer.max_steps=abc"], "trainer.max_steps", "Integer"),
        (["+model.depth=3"], "model.depth", "unknown key"),
        (["+trainer.foo=1"], "trainer.foo", "unknown key"),
        (["model=vaegan", "+model.gama=0.1"], "model.gama", "did you mean model.gamma?"),
        (["model=gan", "+model.discriminator.spectral_nrm=true"], "model.discriminator.spectral_nrm", "spectral_norm?"),
        (["+colour=red"], "colour", "top-level"),
        (["model=gan", "model.loss=wgan"], "model.loss", "wgan-gp"),
        (["model=gan", "model.loss=wgan-gp"], "model.discriminator.norm", "batch norm"),
        (["model=vae", "model.pixel_range=symmetric"], "model.pixel_range", "Bernoulli"),
        (["model=vae", "model.prior=vamp"], "model.prior", "mixture"),
        (["model=vae", "model.prior=mixture", "model.prior_components=0"], "model.prior_components", "> 0"),
        (["model=vae", "optimizer.discriminator.lr=1e-4"], "optimizer.discriminator", "no discriminator"),
        (["optimizer=sgd", "optimizer.betas=[0.5,0.9]"], "optimizer.betas", "not used by sgd"),
        (["trainer.amp=fp8"], "trainer.amp", "bf16"),
        (["trainer.max_steps=null", "trainer.max_epochs=null"], "trainer.max_steps", "at least one"),
        (["device=tpu"], "device", "allowed"),
        (["dataset=image_folder"], "dataset.path", "no value"),
    ],
)
def test_bad_config_names_the_key(overrides, key, words):
    from vaegan_runner.training.device import resolve_device

    with pytest.raises(ConfigError) as err:
        run = validate(compose_config(overrides))
        resolve_device(run.device)
    assert err.value.key == key, str(err.value)
    assert words in str(err.value)


def test_amp_off_survives_yaml_boolean():
    assert validate(compose_config(["trainer.amp=off"])).trainer.amp == "off"
    assert validate(compose_config(["trainer.amp=bf16"])).trainer.amp == "bf16"


def test_per_network_learning_rate():
    from vaegan_runner.models import family_class
    from vaegan_runner.training.optim import build_optimizers

    run = validate(
        compose_config(
            ["model=gan", "optimizer.lr=1e-4", "optimizer.discriminator.lr=4e-4", "model.net.width=8", "dataset=shapes"]
        )
    )
    family = family_class("gan")(run.model, 1, 28)
    opts = build_optimizers(run.optimizer, family.networks())
    assert opts["generator"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert opts["discriminator"].param_groups[0]["lr"] == pytest.approx(4e-4)


# --- the command line, as a user runs it ----------------------------------------------------
@pytest.mark.parametrize(
    "args,needle",
    [
        (["model=nope"], "nope"),
        (["optimizer.lr=-1"], "optimizer.lr"),
        (["dataset=shapes", "dataset.image_size=30"], "dataset.image_size"),
        (["trainer.colour=1"], "trainer.colour"),
    ],
)
@pytest.mark.slow
def test_cli_bad_override_exits_nonzero_without_run_dir(tmp_path, args, needle):
    result = run_cli(args, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_cli_missing_mnist_offline_is_one_clear_error(tmp_path):
    result = run_cli(
        ["dataset=mnist", f"dataset.root={tmp_path / 'nodata'}", "dataset.download=false"], cwd=tmp_path, timeout=120
    )
    assert result.returncode == 2
    assert "dataset.root" in result.stderr and "nodata" in result.stderr and "shapes" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "overrides, lr",
    [
        (["model=gan", "dataset=cifar10"], 4e-4),  # configs/family_dataset/gan_cifar10.yaml
        (["model=gan", "dataset=cifar10", "model.conditional=true"], 2e-4),
        (["model=gan", "dataset=cifar10", "optimizer=adamw"], 4e-4),  # after the family's optimizer file
        (["model=gan", "dataset=cifar10", "optimizer.lr=1e-3"], 1e-3),  # the command line wins
        (["model=gan", "dataset=mnist"], 1.6e-3),  # no file for the pair: nothing changes
        (["model=aae", "dataset=cifar10"], 8e-4),  # its CIFAR-10 file sets no rate: its own
    ],
)
def test_per_dataset_defaults_set_the_gans_rate_on_cifar10(overrides, lr):
    run = validate(compose_config([*overrides, "dataset.download=false"]))
    assert run.optimizer.lr == pytest.approx(lr)


@pytest.mark.parametrize(
    "overrides, weight",
    [
        (["model=gan", "dataset=cifar10", "model.conditional=true"], 1.0),  # gan_cifar10.yaml
        (["model=gan", "dataset=cifar10"], 0.0),  # ACGAN's loss needs labels: conditional only
        (["model=gan", "dataset=cifar10", "model.conditional=true", "model.auxiliary_weight=0"], 0.0),
        (["model=gan", "dataset=mnist", "model.conditional=true"], 0.0),  # no file for the pair
    ],
)
def test_the_conditional_gan_on_cifar10_takes_acgans_class_loss(overrides, weight):
    run = validate(compose_config([*overrides, "dataset.download=false"]))
    assert run.model.auxiliary_weight == pytest.approx(weight)


def test_per_dataset_defaults_give_the_vae_its_colour_likelihood():
    assert validate(compose_config(["model=vae", "dataset=cifar10"])).model.likelihood == "discretized_logistic"
    assert validate(compose_config(["model=vae", "dataset=mnist"])).model.likelihood == "bernoulli"


@pytest.mark.parametrize(
    ("overrides", "latent", "scale"),
    [
        (["dataset=cifar10"], 128, "pixel"),
        (["dataset=cifar10", "model.conditional=true"], 8, "channel"),
        (["dataset=cifar10", "model.latent_dim=32", "model.logistic_scale=channel"], 32, "channel"),  # the command wins
        (["dataset=mnist"], 32, "channel"),
    ],
)
def test_the_unconditional_vae_on_cifar10_has_a_larger_code_and_scales_per_pixel(overrides, latent, scale):
    run = validate(compose_config(["model=vae", *overrides, "dataset.download=false"]))
    assert (run.model.latent_dim, run.model.logistic_scale) == (latent, scale)


@pytest.mark.parametrize(
    ("model", "overrides", "latent"),
    [
        ("wae", ["dataset=cifar10"], 64),
        ("wae", ["dataset=cifar10", "model.conditional=true"], 8),
        ("wae", ["dataset=cifar10", "model.latent_dim=16"], 16),  # the command wins
        ("wae", ["dataset=mnist"], 8),
        ("aae", ["dataset=cifar10"], 64),
        ("aae", ["dataset=cifar10", "model.conditional=true"], 8),
        ("aae", ["dataset=mnist"], 16),
    ],
)
def test_the_unconditional_aae_and_wae_on_cifar10_have_a_larger_code(model, overrides, latent):
    run = validate(compose_config([f"model={model}", *overrides, "dataset.download=false"]))
    assert run.model.latent_dim == latent


@pytest.mark.parametrize("model", ["bigan", "vaegan"])
@pytest.mark.parametrize(
    ("overrides", "lr"),
    [
        (["dataset=cifar10"], 4e-4),
        (["dataset=cifar10", "model.conditional=true"], 2e-4),
        (["dataset=cifar10", "optimizer.lr=1e-3"], 1e-3),  # the command wins
        (["dataset=mnist"], 1.6e-3),
    ],
)
def test_the_unconditional_bigan_and_vaegan_on_cifar10_take_the_gans_colour_rate(model, overrides, lr):
    run = validate(compose_config([f"model={model}", *overrides, "dataset.download=false"]))
    assert run.optimizer.lr == pytest.approx(lr)
