"""``vaegan-train``: compose the config, validate it, load data, build the family, train.

    vaegan-train model=vaegan dataset=mnist
    vaegan-train -m model=vae,gan optimizer.lr=1e-3,1e-4
    python -m vaegan_runner.train model=gan trainer.max_steps=500

A config that cannot run stops here, before any data is loaded or model built, with one
paragraph naming the key, exit code 2, and no run directory left behind.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .config import ConfigError
from .sweep_dir import register as register_sweep_resolver

log = logging.getLogger("vaegan_runner")
EXIT_CONFIG_ERROR = 2


def config_dir() -> str:
    """The source tree's ``configs/`` when running from a checkout, else the installed copy."""
    source = Path(__file__).resolve().parent.parent / "configs"
    return str(source) if (source / "train.yaml").is_file() else "pkg://vaegan_runner.configs"


def run(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    # Imports here keep `vaegan-train --help` and config errors fast.
    from .checkpoint import find_checkpoint, load_checkpoint, run_dir_of
    from .data import load_data
    from .device import resolve_device, seed_everything
    from .loop import fit
    from .models import family_class
    from .run_config import validate

    run_cfg = validate(cfg)
    device = resolve_device(run_cfg.device)
    run_dir, resume_state = output_dir, None
    if run_cfg.resume:
        checkpoint = find_checkpoint(run_cfg.resume)
        resume_state = load_checkpoint(checkpoint)
        check_resumable(resume_state["meta"], run_cfg)
        run_dir = run_dir_of(checkpoint)
        log.info("resuming %s at step %d; writing to %s", checkpoint, resume_state["step"], run_dir)

    seed_everything(run_cfg.seed, run_cfg.trainer.deterministic)
    data = load_data(run_cfg.dataset, device)
    family = family_class(run_cfg.model.name)(run_cfg.model, data.channels, data.image_size).to(device)
    log.info("%s on %s (%d train / %d held-out images, %dx%dx%d) on %s; run directory %s",
             run_cfg.model.name, data.name, len(data.train), len(data.test), data.channels,
             data.image_size, data.image_size, device, run_dir)
    return fit(run_cfg, family, data, run_dir, resume_state)


def check_resumable(meta: dict, run_cfg) -> None:
    """The checkpoint must be of the same family and image shape as the config asks for."""
    wanted = {"model": run_cfg.model.name, "dataset": run_cfg.dataset.name,
              "image_size": run_cfg.dataset.image_size, "latent_dim": run_cfg.model.latent_dim}
    for key, value in wanted.items():
        if meta.get(key) != value:
            raise ConfigError("resume", f"the checkpoint was written with {key}={meta.get(key)}, but this "
                              f"run has {key}={value}; resume with the checkpoint's config "
                              f"(model={meta.get('model')} dataset={meta.get('dataset')})")


def remove_if_empty_run(output_dir: Path) -> None:
    """Delete a run directory that holds nothing but Hydra's own bookkeeping."""
    if output_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in output_dir.iterdir()):
        shutil.rmtree(output_dir, ignore_errors=True)
        for parent in list(output_dir.parents)[:2]:  # outputs/<model>-<dataset>/, then outputs/
            try:
                parent.rmdir()  # only if empty
            except OSError:
                break


register_sweep_resolver()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> dict[str, float]:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run(cfg, output_dir)
    except ConfigError as err:
        logging.shutdown()
        remove_if_empty_run(output_dir)
        print(f"vaegan-train: error: {err}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)


if __name__ == "__main__":
    main()
