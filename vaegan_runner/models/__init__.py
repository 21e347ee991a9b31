"""Model families by name: the built-in ones in this folder and those other packages declare.

``model=aae`` reads ``configs/model/aae.yaml`` and builds the family named ``aae``:

- a built-in family is a module here that registers its class (``@FAMILIES.register("aae")``);
  every module of this folder but the shared helpers of ``_NOT_FAMILIES`` is imported;
- a family from another package is an entry point of the group ``vaegan_runner.families``
  (``external.py``), imported only when asked for; its YAML reaches Hydra's search path
  through the group ``vaegan_runner.configs`` (``vaegan_runner/config/search_path.py``).

Either way a family is its module and its YAML: what the runner needs to know of it (networks,
label use, metrics, checkpoint migrations) is declared on its class (``base.Family``), so
nothing here, in the training loop or in the tests changes to add one
(docs/adding-a-family.md). ``base`` (Family, Phase), ``adversarial`` (the discriminator's game),
``encoders`` and ``conditioning`` are parts the families share, not families.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..config.checks import ConfigError
from .base import FAMILIES, Family, FamilyConfig, Phase
from .external import declared_families, load_family

_NOT_FAMILIES = {"base", "adversarial", "encoders", "conditioning", "external"}  # not families


def _import_builtin_families() -> dict[str, type[Family]]:
    """Import every family module of this folder (each registers its class in ``FAMILIES``);
    the built-in families by name."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_FAMILIES and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return {name: FAMILIES[name] for name in FAMILIES}


def family_names() -> list[str]:
    """Every family a config may name, built-in and declared by entry points, alphabetically."""
    builtin = _import_builtin_families()
    return sorted([*builtin, *declared_families(builtin)])


def family_class(name: str) -> type[Family]:
    """The class of the family ``name``; an unknown name is a ``ConfigError`` on ``model.name``
    listing the known ones, a clash or an entry point that cannot be loaded one naming it."""
    builtin = _import_builtin_families()
    declared = declared_families(builtin)
    if name in declared:
        return load_family(declared[name])
    if name not in builtin:
        known = ", ".join(sorted([*builtin, *declared]))
        raise ConfigError(FAMILIES.key, FAMILIES.message.format(name=name, allowed=known))
    return builtin[name]


__all__ = ["Family", "FamilyConfig", "Phase", "family_class", "family_names"]
