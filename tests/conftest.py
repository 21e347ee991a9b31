"""Shared fixtures: the cache folder, the real MNIST files, and a family with the loop's
phase runner (for tests that run one phase alone)."""

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def cache_in_tmp(tmp_path_factory):
    """Point VAEGAN_CACHE_DIR (the default cache root of the config tree) at a per-session temp
    folder, so that tests, and the CLI runs they start, never write into ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAEGAN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def real_data_root() -> Path:
    """A folder holding the real MNIST/raw and FashionMNIST/raw files; skips the test if none."""
    candidates = [Path(os.environ["VAEGAN_DATA_DIR"])] if os.environ.get("VAEGAN_DATA_DIR") else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    for root in candidates:
        if (root / "MNIST" / "raw").is_dir():
            return root
    pytest.skip("real MNIST files not found (set VAEGAN_DATA_DIR to a folder holding MNIST/raw/)")


def _build_family(model: str, *overrides: str, channels: int = 1, image_size: int = 28):
    """(run config, family) of ``model`` on the shapes dataset with narrow networks, seeded."""
    import torch

    from runner_utils import SHAPES_CLASSES, compose_config
    from vaegan_runner.config.schema import validate
    from vaegan_runner.models import family_class

    run = validate(
        compose_config(
            [
                f"model={model}",
                "dataset=shapes",
                f"dataset.channels={channels}",
                f"dataset.image_size={image_size}",
                "model.net.width=8",
                *overrides,
            ]
        )
    )
    torch.manual_seed(0)
    return run, family_class(model)(run.model, channels, image_size, SHAPES_CLASSES)


def _phase_runner(run, family):
    """The loop's own PhaseRunner for ``family``: fresh optimizers, full precision on the CPU,
    no clipping, one process."""
    import torch

    from vaegan_runner.training.device import Precision
    from vaegan_runner.training.optim import build_optimizers
    from vaegan_runner.training.phase_runner import PhaseRunner

    return PhaseRunner(
        family,
        build_optimizers(run.optimizer, family.networks()),
        Precision("off", torch.device("cpu")),
        grad_clip=None,
    )


@pytest.fixture
def build_family():
    """``build_family(model, *overrides, channels=1, image_size=28) -> (run, family)``."""
    return _build_family


@pytest.fixture
def phase_runner():
    """``phase_runner(run, family) -> PhaseRunner``: runs one phase at a time, as the loop does."""
    return _phase_runner
