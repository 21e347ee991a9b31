"""The resume check: whether this run's config can continue from a checkpoint, and what differs.

``check_resumable`` refuses, before any data is loaded, a checkpoint trained on another family,
dataset or image shape, or whose networks do not fit the ones this config builds;
``warn_if_other_version`` names a resume across runner versions in one warning;
``setting_changes`` lists the config keys that differ between the checkpoint's config and this
run's, one line each, for those errors and for ``training.resume``'s warning.
"""

from __future__ import annotations

import logging

import torch

from ..config.checks import ConfigError
from ..version import __version__
from .checkpoint import Checkpoint


def check_resumable(saved: Checkpoint | dict, run_cfg) -> None:
    """Refuse, before any data is loaded, a checkpoint this run's config cannot continue from:
    another family, dataset, image size, channel count or latent size (from the checkpoint's
    ``meta``), or networks of other shapes (the family this config builds, made on the meta
    device: no memory and no time, compared weight by weight with the checkpoint's). The
    errors name the checkpoint's value and this run's. ``saved`` may be the dict on disk."""
    from ..models import family_class

    if isinstance(saved, dict):
        saved = Checkpoint.from_dict(saved)
    meta = {key: value for key, value in saved.meta.to_dict().items() if value is not None}
    here = {
        "model": run_cfg.model.name,
        "dataset": run_cfg.dataset.name,
        "image_size": run_cfg.dataset.image_size,
        "channels": run_cfg.dataset.channels,
        "latent_dim": run_cfg.model.latent_dim,
        "conditional": run_cfg.model.conditional,
        "labelled": getattr(run_cfg.dataset, "labelled", None),
    }
    option = {
        "model": "model",
        "dataset": "dataset",
        "image_size": "dataset.image_size",
        "channels": "dataset.channels",
        "latent_dim": "model.latent_dim",
        "conditional": "model.conditional",
        "labelled": "dataset.labelled",
    }
    differ = [key for key, value in here.items() if key in meta and meta[key] != value]
    if differ:
        theirs = " ".join(f"{option[key]}={meta[key]}" for key in differ)
        ours = " ".join(f"{option[key]}={here[key]}" for key in differ)
        same = " ".join(f"{option[key]}={meta[key]}" for key in option if key in meta)
        raise ConfigError(
            "resume",
            f"the checkpoint was written with {theirs}, but this run has {ours}; resume "
            f"with the checkpoint's settings ({same}), or start a fresh run without resume=",
        )
    with torch.device("meta"):
        family = family_class(run_cfg.model.name)(
            run_cfg.model, run_cfg.dataset.channels, run_cfg.dataset.image_size, saved.meta.num_classes
        )
    wanted = {name: tuple(getattr(t, "shape", ())) for name, t in family.state_dict().items()}
    in_checkpoint = {name: tuple(getattr(t, "shape", ())) for name, t in saved.family.items()}
    if wanted == in_checkpoint:
        return
    shapes = [
        f"{name} is {list(in_checkpoint[name])} in the checkpoint and {list(wanted[name])} here"
        for name in wanted
        if name in in_checkpoint and in_checkpoint[name] != wanted[name]
    ]
    shapes += [f"{name} is missing from the checkpoint" for name in wanted if name not in in_checkpoint]
    shapes += [
        f"the checkpoint has {name}, which this config's networks lack" for name in in_checkpoint if name not in wanted
    ]
    changed = "; ".join(setting_changes(saved.config.get("model", {}), run_cfg.resolved.get("model", {}), "model"))
    raise ConfigError(
        "resume",
        f"the checkpoint's networks do not fit the ones this config builds "
        f"({'; '.join(shapes[:2])}{f'; {len(shapes) - 2} more' if len(shapes) > 2 else ''})"
        f"{f'. Model settings that differ: {changed}' if changed else ''}. Resume with the "
        "checkpoint's model settings, or start a fresh run without resume=",
    )


def warn_if_other_version(saved: Checkpoint | dict, log: logging.Logger | None = None) -> str | None:
    """When ``saved`` was written by another version of the runner than this one, log one
    warning that names both (defaults and the checkpoint format change between versions:
    CHANGELOG.md says how) and return it; None when the versions match. ``saved`` may be the
    dict on disk."""
    if isinstance(saved, dict):
        saved = Checkpoint.from_dict(saved)
    if saved.runner_version == __version__:
        return None
    message = (
        f"resuming a checkpoint written by vaegan-runner {saved.written_by} with vaegan-runner "
        f"{__version__}; CHANGELOG.md lists what changed between them"
    )
    (log or logging.getLogger("vaegan_runner")).warning(message)
    return message


def setting_changes(theirs, ours, prefix: str) -> list[str]:
    """'<dotted key> is <checkpoint's value> in the checkpoint and <this run's> here' for every
    leaf that differs; a group whose ``name`` differs (``model``: gan and bigan) as one line,
    since every key under it differs by that."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        if "name" in theirs and "name" in ours and theirs["name"] != ours["name"]:
            return [f"{prefix} is {theirs['name']!r} in the checkpoint and {ours['name']!r} here"]
        return [
            change
            for key in sorted(set(theirs) | set(ours), key=str)
            for change in setting_changes(theirs.get(key), ours.get(key), f"{prefix}.{key}")
        ]
    return [] if theirs == ours else [f"{prefix} is {theirs!r} in the checkpoint and {ours!r} here"]
