"""Shared fixtures: the cache folder, the real MNIST files, and a family with the loop's
phase runner (for tests that run one phase alone); the order of the two tiers: the fast tier
runs first, and a failure in it stops the run before the slow tier starts; and the share of the
cores each pytest-xdist worker (``-n auto``) takes."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

FAST_TIER_FAILED = "the fast tier failed"
SHARED = pytest.StashKey[Path]()  # a folder of this run's, shared by the xdist workers


def pytest_configure(config):
    """The run's shared folder: made by the controlling process (or the only one), named to each
    xdist worker through its ``workerinput``. A worker also takes its share of the cores, for
    itself and the processes it starts (``OMP_NUM_THREADS``, unless it is set already): two
    workers with a thread per core each would compete for both cores."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        shared = Path(tempfile.mkdtemp(prefix="vaegan-tests-"))
        config.add_cleanup(lambda: shutil.rmtree(shared, ignore_errors=True))
    else:
        shared = Path(workerinput["vaegan_shared"])
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    config.stash[SHARED] = shared


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist, in the controlling process: tell a worker where the shared folder is."""
    node.workerinput["vaegan_shared"] = str(node.config.stash[SHARED])


def pytest_collection_modifyitems(config, items):
    """The fast tier first, then the slow one (``@pytest.mark.slow``), each in file order: a
    broken edit shows in minutes, not after the long tests. pytest-xdist hands the tests out in
    this order too."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


FAST_FAILURES: list[str] = []  # node ids of the fast tests that failed in this process


def fast_failed_flag(config) -> Path:
    """The file that says a fast test failed, seen by every worker of the run."""
    return config.stash[SHARED] / "fast-tier-failed"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and item.get_closest_marker("slow") is None:
        FAST_FAILURES.append(item.nodeid)
        fast_failed_flag(item.config).touch()
    return report


def pytest_runtest_setup(item):
    """Stop before the first slow test when a fast one failed: CI's full run says what broke
    without the slow tier's minutes (``--keep-going-slow`` runs the slow tier anyway). One
    process stops there; an xdist worker skips its slow tests instead (the other worker may be
    in the middle of one), so the run ends as soon as those that started have finished."""
    if item.get_closest_marker("slow") is None or item.config.getoption("keep_going_slow"):
        return
    if not FAST_FAILURES and not fast_failed_flag(item.config).exists():
        return
    if getattr(item.config, "workerinput", None) is not None:
        pytest.skip(f"{FAST_TIER_FAILED}: the slow tier is not run")
    failed = len(set(FAST_FAILURES))
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
def cache_in_tmp(request):
    """Point VAEGAN_CACHE_DIR (the default cache root of the config tree) at the run's shared
    folder, so that tests, and the CLI runs they start, never write into ~/.cache, and xdist
    workers train each domain classifier once between them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAEGAN_CACHE_DIR", str(request.config.stash[SHARED] / "cache"))
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
    from vaegan_runner.models import family_class
    from vaegan_runner.run_schema import validate

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
