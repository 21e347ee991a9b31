"""Shared fixtures: the cache folder, the real MNIST files, and a family with the loop's
phase runner (for tests that run one phase alone); and the order of the two tiers: the fast
tier runs first, and a failure in it stops the run before the slow tier starts."""

import os
from pathlib import Path

import pytest

FAST_TIER_FAILED = "the fast tier failed"


def pytest_collection_modifyitems(config, items):
    """The fast tier first, then the slow one (``@pytest.mark.slow``), each in file order: a
    broken edit shows in minutes, not after the long tests."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


FAST_FAILURES: list[str] = []  # node ids of the fast tests that failed in this session


def pytest_runtest_logreport(report):
    if report.failed and "slow" not in report.keywords:
        FAST_FAILURES.append(report.nodeid)


def pytest_runtest_setup(item):
    """Stop before the first slow test when a fast one failed: CI's full run says what broke
    without the slow tier's minutes (``--keep-going-slow`` runs the slow tier anyway)."""
    failed = len(set(FAST_FAILURES))
    if failed and item.get_closest_marker("slow") is not None and not item.config.getoption("keep_going_slow"):
        pytest.exit(
            f"{FAST_TIER_FAILED} ({failed} test{'s' if failed > 1 else ''}): the slow tier is not run", returncode=1
        )


def pytest_addoption(parser):
    parser.addoption(
        "--keep-going-slow",
        action="store_true",
        dest="keep_going_slow",
        help="run the slow tier even when the fast tier failed (by default a fast failure stops the run)",
    )


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
