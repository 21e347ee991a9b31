"""Typed, validated views of the composed Hydra config.

Every default lives in the YAML tree under ``configs/``. The dataclasses in the code say
only which keys exist and what type each one has; ``typed`` merges a config node into its
dataclass, so an unknown key or a value of the wrong type becomes a ``ConfigError`` that
names the full key. Range checks and impossible combinations raise ``ConfigError`` from the
dataclasses' ``__post_init__`` or from ``require``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot run. The message is shown to the user as it is."""

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}" if key else message)


def require(condition: bool, key: str, message: str) -> None:
    """Raise ``ConfigError(key, message)`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, message)


def one_of(value: Any, allowed: Iterable[Any], key: str) -> None:
    allowed = list(allowed)
    require(value in allowed, key, f"got {value!r}; allowed: {', '.join(map(str, allowed))}")


def positive(value: float | int | None, key: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    require(value is not None and value > 0, key, f"must be > 0, got {value!r}")


def non_negative(value: float | int | None, key: str) -> None:
    require(value is not None and value >= 0, key, f"must be >= 0, got {value!r}")


def folder_or_absent(path: str | None, key: str) -> None:
    """A cache folder (``eval.cache_dir``, ``dataset.cache_dir``) that is missing (it is created)
    or a folder; a regular file there would make every run rebuild what it caches, for minutes."""
    if path is None:
        return
    where = Path(path).expanduser()
    require(
        not where.exists() or where.is_dir(),
        key,
        f"{where} is a file, not a folder: give a folder (created when missing) here or in VAEGAN_CACHE_DIR, "
        "its default",
    )


SEED_LIMIT = 2**63  # seeds go to torch.manual_seed (< 2**64), numpy (seed % 2**32) and, as int64, numpy's SeedSequence


def check_seed(value: Any, key: str) -> None:
    """A seed every random generator of a run accepts: a whole number in [0, 2**63)."""
    require(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value < SEED_LIMIT,
        key,
        f"must be a whole number from 0 to 2**63 - 1 = {SEED_LIMIT - 1} (torch, numpy and the data's "
        f"shuffling all take it), got {value!r}",
    )


def check_booleans(schema: type, node: Any, prefix: str) -> None:
    """Refuse a number other than 0 and 1 for a true/false key of ``schema`` (or of the groups
    under it): OmegaConf reads any whole number as a bool (2 as true), so a typo or a count
    given to a switch (``checkpoint.keep_best=2``) would pass silently."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)  # an interpolation stays a string: left to OmegaConf
    if not isinstance(node, dict) or not dataclasses.is_dataclass(schema):
        return
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        if field.name not in node:
            continue
        value, kinds = node[field.name], _types_in(hints[field.name])
        nested = next((kind for kind in kinds if dataclasses.is_dataclass(kind)), None)
        if nested is not None:  # a type hint: the dataclass itself, not an instance
            check_booleans(cast(type, nested), value, f"{prefix}.{field.name}")
        elif bool in kinds and _is_number_other_than_0_or_1(value):
            raise ConfigError(
                f"{prefix}.{field.name}",
                f"must be true or false, got {value!r} (of numbers only 0 and 1 stand for false and true)",
            )


def _types_in(hint: Any) -> tuple:
    """``bool | None`` -> (bool, NoneType); ``bool`` -> (bool,)."""
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _is_number_other_than_0_or_1(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = int(value)  # OmegaConf reads "2" as an int, then as true
        except ValueError:
            return False
    return isinstance(value, (int, float)) and value not in (0, 1)


def typed(schema: type[T], node: DictConfig | dict, prefix: str) -> T:
    """Merge ``node`` into the dataclass ``schema`` and return the dataclass instance.

    ``prefix`` is the dotted path of ``node`` in the full config (``"model"``), used so
    that error messages name the key as the user typed it (``model.latent_dim``).
    """
    check_booleans(schema, node, prefix)
    try:
        base = OmegaConf.structured(schema)
        merged = OmegaConf.merge(base, node)
        return cast(T, OmegaConf.to_object(merged))  # runs __post_init__ checks
    except ConfigError as err:
        key = f"{prefix}.{err.key}" if err.key and not err.key.startswith(prefix + ".") else err.key or prefix
        raise ConfigError(key, err.message) from None
    except OmegaConfBaseException as err:
        full_key = getattr(err, "full_key", None) or ""
        key = f"{prefix}.{full_key}" if full_key else prefix
        reason = str(err).splitlines()[0]
        if "not in struct" in reason or ("Key '" in reason and "not in" in reason):
            parent, owner = _owner_of(schema, full_key, prefix)
            near = difflib.get_close_matches(key.rsplit(".", 1)[-1], keys_of(owner), n=1)
            guess = f"did you mean {parent}.{near[0]}? " if near else ""
            reason = f"unknown key; {guess}the keys of {parent} are: {', '.join(keys_of(owner))}"
        elif "missing mandatory value" in reason.lower():
            reason = "has no value; set it in the YAML or on the command line"
        elif "is not a subclass of" in reason and (group := _nested_schema(schema, full_key)) is not None:
            first = keys_of(group)[0]
            reason = (
                f"is a group of keys ({', '.join(keys_of(group))}), not one value; "
                f"set one of them, e.g. {key}.{first}=..."
            )
        else:
            hint = next((hint.format(key=key) for needle, hint in _TYPE_HINTS if needle in reason), "")
            reason = reason.rstrip(".") + hint if hint else reason
        raise ConfigError(key, reason) from None


_TYPE_HINTS = (  # what to do, after OmegaConf's own words for a value of the wrong type
    ("converted to Integer", "; set {key} to a whole number"),
    ("converted to Float", "; set {key} to a number, e.g. {key}=0.001 or {key}=1e-3"),
    ("not a valid bool", "; set {key} to true or false"),
    ("is not a ListConfig", "; give a list in brackets, e.g. {key}=[a,b] (quote the override in the shell)"),
    ("Incompatible value 'None'", "; {key} cannot be null, give it a value"),
)


def _nested_schema(schema: type, full_key: str) -> type | None:
    """The dataclass of the group at ``full_key`` (``schedule`` of the optimizer), if it is one."""
    owner: Any = schema
    for part in full_key.split("."):
        owner = typing.get_type_hints(owner).get(part) if dataclasses.is_dataclass(owner) else None
    return cast(type, owner) if dataclasses.is_dataclass(owner) else None  # a type hint: the class


def _owner_of(schema: type, full_key: str, prefix: str) -> tuple[str, type]:
    """The dataclass that holds the last part of ``full_key``, and its dotted path."""
    owner: Any = schema
    path = prefix
    for part in full_key.split(".")[:-1]:
        nested = typing.get_type_hints(owner).get(part)
        if not dataclasses.is_dataclass(nested):
            break
        owner, path = nested, f"{path}.{part}"
    return path, owner


def keys_of(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]
