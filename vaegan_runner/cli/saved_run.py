"""A finished or running run, loaded back from a checkpoint for evaluation and sampling.

The checkpoint carries its resolved config, so the family, the dataset and the metric
settings are rebuilt exactly as they were trained; ``overrides`` (``dataset.root=...``) adapt
what differs on this machine. Loading never executes pickled code (``weights_only=True``).
Keys added to the config tree after a checkpoint was written get the value that reproduces the
old behaviour (``training/checkpoint.py``'s ``ADDED_KEYS``), so older checkpoints still load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from ..data import ImageData

CHECKPOINT_CHOICES = ("last", "best")


@dataclass
class SavedRun:
    run: object  # RunConfig
    family: object  # Family, in eval mode, on the chosen device
    data: ImageData | None
    checkpoint: Path
    run_dir: Path
    step: int


def checkpoint_file(target: str, which: str) -> Path:
    """The checkpoint that ``target`` (a file or a run directory) and ``which`` (``last`` or
    ``best``, the CLIs' ``checkpoint=`` setting) name."""
    from ..config.checks import ConfigError, one_of
    from ..training.checkpoint import best_path, find_checkpoint

    one_of(which, CHECKPOINT_CHOICES, "checkpoint")
    if which == "last":
        return find_checkpoint(target, key="checkpoint")
    folder = Path(target).expanduser()
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
    return best


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
    its newest checkpoint, or with ``which="best"`` its ``best.pt``)."""
    from ..config.schema import validate
    from ..data import load_data
    from ..models import family_class
    from ..training.checkpoint import read_checkpoint, run_dir_of
    from ..training.device import resolve_device

    checkpoint = checkpoint_file(target, which)
    saved = read_checkpoint(checkpoint, key="checkpoint")
    cfg = OmegaConf.merge(OmegaConf.create(saved.config), OmegaConf.from_dotlist(overrides))
    run = validate(cfg)  # an unknown key in an override is refused here, by name
    check_same_shape(run, saved.meta)
    torch_device = resolve_device(device or run.device)
    meta = saved.meta
    family = family_class(run.model.name)(run.model, meta.channels, meta.image_size, meta.num_classes).to(torch_device)
    family.load_state_dict(saved.family)
    family.eval()
    data = load_data(run.dataset, torch_device) if with_data else None
    return SavedRun(run, family, data, checkpoint, run_dir_of(checkpoint), saved.step)
