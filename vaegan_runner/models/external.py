"""Families that other packages install, declared by entry points of ``FAMILY_GROUP``.

A package adds a family without touching this one by declaring, in its ``pyproject.toml``::

    [project.entry-points."vaegan_runner.families"]
    toy = "toyfam.family:ToyFamily"       # the family's name (model.name) = its Family subclass

    [project.entry-points."vaegan_runner.configs"]
    toyfam = "toyfam.configs"             # a package holding model/toy.yaml (vaegan_runner/config/search_path.py)

The names are read from the installed metadata without importing anything; a family's module
is imported only when that family is asked for. A name that a built-in family (or a second
entry point) already has is refused, naming both, whichever family the run asks for: which of
two families a name means must never depend on the order packages were found in.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points

from ..config.checks import ConfigError
from .base import Family

FAMILY_GROUP = "vaegan_runner.families"


def declared_families(builtin: Mapping[str, type[Family]]) -> dict[str, EntryPoint]:
    """The entry points of ``FAMILY_GROUP`` by family name. A name clash (with a built-in
    family of ``builtin``, or between two entry points) is a ``ConfigError`` naming both."""
    declared: dict[str, EntryPoint] = {}
    for point in entry_points(group=FAMILY_GROUP):
        if point.name in builtin:
            cls = builtin[point.name]
            raise ConfigError(
                FAMILY_GROUP,
                f"two families are named {point.name!r}: the built-in {cls.__module__}:{cls.__qualname__} and "
                f"the entry point {describe(point)}; rename the entry point in {distribution(point)}'s "
                f'[project.entry-points."{FAMILY_GROUP}"] and reinstall it, or uninstall {distribution(point)}',
            )
        other = declared.get(point.name)
        if other is not None and other.value != point.value:
            raise ConfigError(
                FAMILY_GROUP,
                f"two families are named {point.name!r}: the entry points {describe(other)} and {describe(point)}; "
                "rename one of them and reinstall its package, or uninstall one of the packages",
            )
        declared[point.name] = point
    return declared


def load_family(point: EntryPoint) -> type[Family]:
    """The ``Family`` subclass an entry point names. A module that fails to import, a missing
    attribute or an object that is not a family is a ``ConfigError`` naming the entry point and
    its distribution, with the error in one line (not the traceback)."""
    try:
        found = point.load()
    except Exception as err:  # noqa: BLE001 -- whatever the module raises, the family cannot be built
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        raise ConfigError(
            "model",
            f"the family {point.name!r} cannot be loaded: importing the entry point {describe(point)} raised "
            f"{type(err).__name__}: {first_line}. Fix or reinstall {distribution(point)} (python -c "
            f"'import {point.module}' shows the traceback), or uninstall it; the other families are unaffected",
        ) from None
    if not (isinstance(found, type) and issubclass(found, Family)):
        raise ConfigError(
            "model",
            f"the family {point.name!r} cannot be used: the entry point {describe(point)} names "
            f"{found!r}, not a subclass of vaegan_runner.models.Family; point it at the family's class",
        )
    return found


def describe(point: EntryPoint) -> str:
    """'toy = toyfam.family:ToyFamily (group vaegan_runner.families, distribution toyfam 0.1)'."""
    version = f" {point.dist.version}" if point.dist is not None else ""
    return f"{point.name} = {point.value} (group {point.group}, distribution {distribution(point)}{version})"


def distribution(point: EntryPoint) -> str:
    """The name of the installed distribution that declares ``point``."""
    return point.dist.name if point.dist is not None else "(unknown distribution)"
