"""Model families, found by module name: ``model=aae`` reads ``configs/model/aae.yaml`` and
builds ``FAMILY`` from ``vaegan_runner/models/aae.py``. Adding a family is one Python file
(defining ``FAMILY``) and one YAML file; nothing here or in the training loop changes.
``base`` (Family, Phase), ``adversarial`` (the discriminator's game) and ``encoders`` are
the parts families share, not families.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import FAMILIES, Family, FamilyConfig, Phase

_NOT_FAMILIES = {"base", "adversarial", "encoders", "conditioning"}  # helpers the families share


def _import_families() -> None:
    """Import every family module; each registers its class in ``FAMILIES``."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_FAMILIES and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def family_names() -> list[str]:
    _import_families()
    return list(FAMILIES.names())


def family_class(name: str) -> type[Family]:
    _import_families()
    return FAMILIES.get(name)


__all__ = ["Family", "FamilyConfig", "Phase", "family_class", "family_names"]
