"""A finished or running run, loaded back from a checkpoint for evaluation and sampling.

The checkpoint carries its resolved config, so the family, the dataset and the metric
settings are rebuilt exactly as they were trained; ``overrides`` (``dataset.root=...``) adapt
what differs on this machine. Loading never executes pickled code (``weights_only=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from .data import ImageData


@dataclass
class SavedRun:
    run: object     # RunConfig
    family: object  # Family, in eval mode, on the chosen device
    data: ImageData | None
    checkpoint: Path
    run_dir: Path
    step: int


def load_saved_run(target: str, overrides: list[str], device: str | None, with_data: bool = True) -> SavedRun:
    """Rebuild the run behind ``target`` (a checkpoint file or run directory)."""
    from .checkpoint import find_checkpoint, read_checkpoint, run_dir_of
    from .data import load_data
    from .device import resolve_device
    from .models import family_class
    from .run_config import validate

    checkpoint = find_checkpoint(target, key="checkpoint")
    saved = read_checkpoint(checkpoint, key="checkpoint")
    cfg = OmegaConf.merge(OmegaConf.create(saved.config), OmegaConf.from_dotlist(overrides))
    run = validate(cfg)  # an unknown key in an override is refused here, by name
    torch_device = resolve_device(device or run.device)
    family = family_class(run.model.name)(run.model, saved.meta.channels, saved.meta.image_size).to(torch_device)
    family.load_state_dict(saved.family)
    family.eval()
    data = load_data(run.dataset, torch_device) if with_data else None
    return SavedRun(run, family, data, checkpoint, run_dir_of(checkpoint), saved.step)
