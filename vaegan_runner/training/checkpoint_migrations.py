"""Checkpoint migrations: the config keys added since the first checkpoints, and their old values.

A key added to the config tree after a checkpoint was written is absent from that checkpoint's
config; ``with_added_keys`` fills it with the value that behaves as before the key existed, so
older checkpoints still load and resume. The runner's keys are in ``ADDED_KEYS``, a dataset's in
``DATASET_ADDED_KEYS``, a family's in its class's ``added_keys`` (``models.base.Family``). Adding
a key to any of them changes the checkpoint layout: raise the minor version (docs/development.md).
"""

from __future__ import annotations

from typing import Any, cast

from omegaconf import OmegaConf

from ..config.checks import ConfigError

ADDED_KEYS = {  # key added since the first checkpoints -> the value that behaves as before it existed
    "optimizer.schedule": {
        "name": "constant",
        "warmup_steps": 0,
        "final_factor": 0.0,
        "step_every": None,
        "milestones": None,
        "gamma": 0.5,
    },
    "checkpoint.keep_best": False,
    "model.conditional": False,
    "eval.inception_reference": "test",
    "eval.iwae_max_images": None,
}
DATASET_ADDED_KEYS: dict[
    str, dict[str, Any]
] = {  # the same, for the keys of one dataset's config (a family's: its class's added_keys)
    **{name: {"dataset.labelled": None} for name in ("mnist", "fashion_mnist", "shapes")},
    "cifar10": {"dataset.labelled": None, "dataset.source": "batches"},
}


def family_added_keys(name) -> dict:
    """The ``added_keys`` of the family ``name`` (``models.base.Family``), as full config keys
    (``model.prior``); none for a name this installation has no family of, whose checkpoint
    is then refused by the config's validation, which names the families there are."""
    from ..models import family_class

    if not isinstance(name, str):
        return {}
    try:
        family = family_class(name)
    except ConfigError:
        return {}
    return {f"model.{key}": value for key, value in family.added_keys.items()}


def with_added_keys(config: dict) -> dict:
    """``config`` (a resolved run config) with every key of ``ADDED_KEYS`` (and of its family's
    ``added_keys`` and dataset's ``DATASET_ADDED_KEYS``) it lacks."""
    node = OmegaConf.create(config)
    family = OmegaConf.select(node, "model.name", default=None)
    dataset = OmegaConf.select(node, "dataset.name", default=None)
    added = {**ADDED_KEYS, **family_added_keys(family), **DATASET_ADDED_KEYS.get(dataset, {})}
    for key, value in added.items():
        if OmegaConf.select(node, key, default="<absent>") == "<absent>":
            OmegaConf.update(node, key, value, force_add=True)
    return cast(dict, OmegaConf.to_container(node))  # made from a dict: a dict
