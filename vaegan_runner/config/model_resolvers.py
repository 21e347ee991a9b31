"""OmegaConf resolvers the model configs use.

``${if_conditional:A,B}`` in a model config (``configs/model/*.yaml``) or a family's optimizer
settings (``configs/family_optimizer/*.yaml``) is A for a class-conditional run
(``model.conditional=true``) and B otherwise, so a family whose best settings differ with the
label keeps both in its one file; ``vaegan-train --cfg job`` prints
the expression, ``--cfg job --resolve`` the value a run will use, and an override such as
``model.latent_dim=16`` replaces it as it would any value.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf, ValidationError
from omegaconf.nodes import BooleanNode


def if_conditional(when_conditional: Any, otherwise: Any, *, _parent_, _root_) -> Any:
    """A or B by the ``conditional`` key beside the expression (a model config), else by
    ``model.conditional`` (the composed run config)."""
    model = _parent_ if "conditional" in _parent_ else _root_.get("model", {})
    return when_conditional if is_true(model.get("conditional", False)) else otherwise


def is_true(value: Any) -> bool:
    """A boolean as the schema reads it (OmegaConf's own conversion): the command line's
    ``model.conditional=no`` arrives here as the string "no", which is false, not a truthy
    string; a value the schema refuses counts as false here and is refused by validation."""
    try:
        return bool(BooleanNode().validate_and_convert(value))
    except ValidationError:
        return False


def register() -> None:
    OmegaConf.register_new_resolver("if_conditional", if_conditional, replace=True)
