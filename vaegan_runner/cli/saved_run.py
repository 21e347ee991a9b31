"""A finished or running run, loaded back from a checkpoint for evaluation and sampling.

The checkpoint carries its resolved config, so the family, the dataset and the metric
settings are rebuilt exactly as they were trained; ``overrides`` (``dataset.root=...``) adapt
what differs on this machine. Loading never executes pickled code (``weights_only=True``).
Keys added to the config tree after a checkpoint was written get the value that reproduces the
old behaviour (``ADDED_KEYS`` in ``training/checkpoint_migrations.py``), so older checkpoints
still load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from omegaconf import DictConfig, OmegaConf

from ..data import ImageData

if TYPE_CHECKING:  # imported when used, for the CLIs' startup
    from ..models import Family
    from ..run_schema import RunConfig

CHECKPOINT_CHOICES = ("last", "best")


@dataclass
class SavedRun:
    run: RunConfig
    family: Family  # in eval mode, on the chosen device
    data: ImageData | None
    checkpoint: Path
    run_dir: Path
    step: int


def read_target(target: str, which: str):
    """(path, ``Checkpoint``) of what ``target`` (a file or a run directory) and ``which``
    (``last`` or ``best``, the CLIs' ``checkpoint=`` setting) name. Of a run directory, ``last``
    is its newest readable checkpoint, as for ``resume=``: newer ones that do not load are
    skipped with one line on stderr naming them, why, and the one used; a file named as such
    must load."""
    import sys

    from ..config.checks import ConfigError, one_of
    from ..config.run_dir import CHECKPOINT_DIR
    from ..training.checkpoint import best_path, find_checkpoint, list_checkpoints, read_checkpoint
    from ..training.run_checkpoints import newest_readable

    one_of(which, CHECKPOINT_CHOICES, "checkpoint")
    folder = Path(target).expanduser()
    if which == "last":
        if not folder.is_dir():
            path = find_checkpoint(target, key="checkpoint")  # a file, or the error for a missing path
            return path, read_checkpoint(path, key="checkpoint")
        found = newest_readable(list_checkpoints(folder / CHECKPOINT_DIR) or list_checkpoints(folder), key="checkpoint")
        if not found.skipped and found.path is None:
            find_checkpoint(target, key="checkpoint")  # raises: no checkpoint at all
        if found.path is None:
            raise found.none_readable("checkpoint", folder)
        if found.fallback_note():
            print(f"checkpoint: {found.fallback_note()}", file=sys.stderr)
        return found.path, found.saved
    if not folder.is_dir():
        raise ConfigError(
            "checkpoint",
            f"checkpoint=best takes a run directory, got {target}; "
            "give the run directory, or the checkpoint file itself without checkpoint=best",
        )
    best = best_path(folder)
    if not best.is_file():
        raise ConfigError(
            "checkpoint",
            f"no best checkpoint ({best}) in this run: it is written during training "
            "with checkpoint.keep_best=true, at evaluations (eval.every_n_steps) that compute "
            "eval.optimized_metric; use checkpoint=last",
        )
    return best, read_checkpoint(best, key="checkpoint")


def check_same_shape(run, meta) -> None:
    """A ``dataset.`` override may say where the data lives, not change the image shape the
    checkpoint's networks were built for."""
    from ..config.checks import ConfigError

    for key, trained in (("image_size", meta.image_size), ("channels", meta.channels)):
        asked = getattr(run.dataset, key)
        if trained is not None and asked != trained:
            raise ConfigError(
                f"dataset.{key}",
                f"the checkpoint's networks were built for dataset.{key}={trained}, got {asked}; "
                f"a checkpoint evaluates and samples at its own size: drop dataset.{key}=",
            )


def load_saved_run(
    target: str, overrides: list[str], device: str | None, with_data: bool = True, which: str = "last"
) -> SavedRun:
    """Rebuild the run behind ``target`` (a checkpoint file or run directory; of a directory,
    its newest readable checkpoint, or with ``which="best"`` its ``best.pt``)."""
    from ..config.run_dir import run_dir_of
    from ..data import load_data
    from ..models import family_class
    from ..run_schema import validate
    from ..training.device import resolve_device

    checkpoint, saved = read_target(target, which)
    # a dict merged with dotted keys: a DictConfig
    cfg = cast(DictConfig, OmegaConf.merge(OmegaConf.create(saved.config), OmegaConf.from_dotlist(overrides)))
    run = validate(cfg)  # an unknown key in an override is refused here, by name
    check_same_shape(run, saved.meta)
    torch_device = resolve_device(device or run.device)
    meta = saved.meta
    family = family_class(run.model.name)(run.model, meta.channels, meta.image_size, meta.num_classes).to(torch_device)
    family.load_state_dict(saved.family)
    family.eval()
    data = load_data(run.dataset, torch_device) if with_data else None
    return SavedRun(run, family, data, checkpoint, run_dir_of(checkpoint), saved.step)


PRIOR_CHOICES = ("model", "gmm")
PRIOR_SETTINGS = {
    "prior": (str, "model"),  # model: the family's own p(z); gmm: a mixture fitted to the training codes
    "prior_components": (int, 10),  # prior=gmm: Gaussians in the mixture (Ghosh et al. 2020 use 10)
}


def ex_post_prior(saved: SavedRun, prior: str, components: int, batch_size: int = 500):
    """None for ``prior=model``; for ``prior=gmm``, the Gaussian mixture fitted to the codes of
    the saved run's training images (``models/fitted_prior.py``). Checked before the fit."""
    import sys

    from ..config.checks import ConfigError, one_of
    from ..data.pixels import to_pixels
    from ..metrics.fingerprints import unit_batches
    from ..models.fitted_prior import ExPostPrior, fit_to_codes

    one_of(prior, PRIOR_CHOICES, "prior")
    if prior == "model":
        if components != PRIOR_SETTINGS["prior_components"][1]:
            raise ConfigError("prior_components", "sizes the mixture of prior=gmm; add prior=gmm or leave it out")
        return None
    family, model = saved.family, saved.run.model.name
    if not family.has_encoder:
        raise ConfigError(
            "prior",
            f"prior=gmm fits a mixture to the codes of the training images, and model={model} has no "
            "encoder to make them; use prior=model",
        )
    data = saved.data
    assert data is not None  # loaded for prior=gmm (vaegan-sample) or always (vaegan-eval)
    train = len(data.train)
    if not 1 <= components <= train:
        raise ConfigError("prior_components", f"must be between 1 and the {train} training images, got {components}")
    batches = (
        (to_pixels(images, family.pixel_range), labels) for images, labels in unit_batches(data.train, batch_size, None)
    )
    mixture, codes = fit_to_codes(family, batches, components)
    fitted = ExPostPrior(mixture, codes, family.device)
    print(f"prior: {fitted.stamp}", file=sys.stderr)
    return fitted
