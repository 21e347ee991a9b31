"""Shared fixtures."""

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
