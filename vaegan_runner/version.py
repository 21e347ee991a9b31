"""The runner's version, from one place: ``version`` in ``pyproject.toml``.

In a source tree (a checkout, or an editable install, whose package files are the checkout's)
the version is read from the ``pyproject.toml`` beside the package: an editable install's
metadata keeps the version of the day ``pip install -e`` ran, so after a release it would name
the previous one. Anywhere else (a wheel) it is the installed package's metadata, which the
wheel's build took from the same ``pyproject.toml``.

Run records carry it (``metrics.json``, every checkpoint, the HPARAMS row); checkpoints from
before versions were recorded read as ``BEFORE_VERSIONS``.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "vaegan-runner"
BEFORE_VERSIONS = "before 0.2.0"  # what a record without a version was written by
UNKNOWN = "unknown"  # neither a source tree nor an installed package (a copied folder)


def source_tree_version(package_dir: Path) -> str | None:
    """``project.version`` of the ``pyproject.toml`` next to ``package_dir``, when that file is
    this project's; None when the package does not sit in its source tree."""
    pyproject = package_dir.parent / "pyproject.toml"
    if not pyproject.is_file():
        return None
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    return project.get("version") if project.get("name") == DISTRIBUTION else None


def runner_version() -> str:
    """The version of the vaegan-runner this code is (see the module docstring)."""
    found = source_tree_version(Path(__file__).resolve().parent)
    if found is not None:
        return found
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return UNKNOWN


__version__ = runner_version()


def version_text(program: str = "vaegan-runner") -> str:
    """One line for ``--version``: the runner's version and the versions of what it runs on,
    read from their metadata (no torch import, so it answers at once)."""
    import platform

    parts = []
    for name, shown in (("hydra-core", "Hydra"), ("torch", "torch")):
        try:
            parts.append(f"{shown} {version(name)}")
        except PackageNotFoundError:
            continue
    parts.append(f"Python {platform.python_version()}")
    return f"{program} {__version__} ({', '.join(parts)})"


def print_version(program: str = "vaegan-runner") -> None:
    """Print ``version_text`` to stdout."""
    print(version_text(program))
