"""Model families, found by module name: ``model=aae`` reads ``configs/model/aae.yaml`` and
builds ``FAMILY`` from ``vaegan_runner/models/aae.py``. Adding a family is one Python file
(defining ``FAMILY``) and one YAML file; nothing here or in the training loop changes.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..config import ConfigError
from .base import Family, FamilyConfig, Phase

_NOT_FAMILIES = {"base"}


def family_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if m.name not in _NOT_FAMILIES and not m.name.startswith("_"))


def family_class(name: str) -> type[Family]:
    names = family_names()
    if name not in names:
        raise ConfigError("model.name", f"unknown model family {name!r}; allowed: {', '.join(names)}")
    return importlib.import_module(f"{__name__}.{name}").FAMILY


__all__ = ["Family", "FamilyConfig", "Phase", "family_class", "family_names"]
