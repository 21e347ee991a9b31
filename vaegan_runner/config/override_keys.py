"""Overrides that name a key or a config the tree does not have, or sweep without ``-m``,
explained before Hydra runs.

Hydra refuses ``trainer.epochs=3`` with "Could not override 'trainer.epochs'. To append to your
config use +trainer.epochs=3" (advice that leads to a key nothing reads) and ``model=vea`` with
the options followed by a dump of its search path, both with exit 1. ``refuse_unknown_keys``
composes the config the way the run will (Hydra's compose API, about 0.2 s), once for the first
value of every sweep and once more for each other choice of a config group (``-m model=vae,gan``),
and for the first override that fails prints one paragraph: the key, the keys its parent has (or
the choices of the group), the closest name, and exits 2. So does a sweep (``optimizer.lr=1e-4,2e-4``)
without ``-m``, which Hydra calls an "Ambiguous value". Anything else that fails to compose is
left to Hydra, which reports it when it runs.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

from .override_syntax import EXIT_CONFIG_ERROR, overrides_of

# flags after which the command composes another config (or none): left to Hydra
_HYDRA_OWN_FLAGS = {
    "-h",
    "--help",
    "--hydra-help",
    "-i",
    "--info",
    "-sc",
    "--shell-completion",
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-cd",
    "--config-dir",
}


def jobs_to_check(overrides: list[str]) -> list[list[str]]:
    """The override lists to compose: the first value of every sweep, then each other choice of a
    sweep over names at the top level (a config group such as ``model``) with the rest as in the
    first.
    ``hydra.*`` overrides and interval or glob sweeps (the sweeper's business) are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    fixed: list[str] = []
    sweeps: list[tuple[str, list[str], bool]] = []  # key, its overrides, whether it names configs
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_hydra_override():
            continue
        if not override.is_sweep_override():
            fixed.append(override.input_line or "")
        elif override.is_discrete_sweep() and override.value_type is not ValueType.GLOB_CHOICE_SWEEP:
            key = override.get_key_element()
            names = "." not in key and all(isinstance(value, str) for value in override.sweep_iterator())
            sweeps.append((key, [f"{key}={value}" for value in override.sweep_string_iterator()], names))
    first = fixed + [values[0] for _, values, _ in sweeps]
    jobs = [first]
    for i, (_, values, names) in enumerate(sweeps):
        if not names:
            continue
        for value in values[1:]:
            job = list(first)
            job[len(fixed) + i] = value
            jobs.append(job)
    return jobs


def refuse_unknown_keys(args: list[str], config_dir: str, config_name: str, prog: str = "vaegan-train") -> None:
    """Exit 2 with one paragraph at the first override of ``args`` that names a key or a config
    the composed tree does not have."""
    if any(arg.split("=", 1)[0] in _HYDRA_OWN_FLAGS for arg in args):
        return
    overrides = overrides_of(args)
    if not overrides:
        return
    if not any(arg in ("-m", "--multirun") for arg in args):
        message = sweep_without_multirun(overrides)
        if message:
            print(f"{prog}: error: {message}", file=sys.stderr)
            sys.exit(EXIT_CONFIG_ERROR)
    for job in jobs_to_check(overrides):
        message = unknown_key_in(job, config_dir, config_name, as_typed=overrides)
        if message:
            print(f"{prog}: error: {message}", file=sys.stderr)
            sys.exit(EXIT_CONFIG_ERROR)


def sweep_without_multirun(overrides: list[str]) -> str | None:
    """The paragraph for the first override with several values (a sweep) in a command without
    ``-m``, which Hydra refuses as "Ambiguous value"; None when there is none."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override() and not override.is_hydra_override():
            typed = override.input_line or override.get_key_element()
            key = override.get_key_element()
            return (
                f"{typed}: several values are a sweep, which runs one job per value with -m "
                f"(vaegan-train -m {typed} ...); for one run give one value, and for a list value "
                f"write it in brackets ({key}=[...])."
            )
    return None


def _compose(job: list[str], config_dir: str, config_name: str) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return compose(config_name, overrides=job, return_hydra_config=True)


def unknown_key_in(job: list[str], config_dir: str, config_name: str, as_typed: list[str] | None = None) -> str | None:
    """The paragraph for the first override of ``job`` that names a key or config the tree does not
    have, quoting it from ``as_typed`` (the command line's overrides) where it is there; None when
    ``job`` composes, or fails for another reason (Hydra then says why)."""
    typed = as_typed if as_typed is not None else job
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    try:
        _compose(job, config_dir, config_name)
    except MissingConfigException as err:
        return _missing_config(err, typed)
    except Exception as err:  # only an unknown key is ours to explain
        cause = err.__cause__
        full_key = getattr(cause, "full_key", None)
        if not isinstance(cause, ConfigAttributeError | ConfigKeyError) or not full_key:
            return None
        others = [o for o in job if not _under(_key_of(o), str(full_key))]
        try:
            cfg = _compose(others, config_dir, config_name)
        except Exception:  # another override fails too: name the key without a list
            cfg = None
        override = next((o for o in typed if _under(_key_of(o), str(full_key))), str(full_key))
        return _unknown_key(override, str(full_key), cfg)
    return None


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def _key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def _unknown_key(override: str, full_key: str, cfg: Any) -> str:
    from omegaconf import DictConfig

    parts = _key_of(override).split(".") if _under(_key_of(override), full_key) else full_key.split(".")
    full_key = ".".join(parts)
    node = cfg
    depth = 0
    while isinstance(node, DictConfig) and depth < len(parts) and parts[depth] in node:
        node = node[parts[depth]]
        depth += 1
    if not isinstance(node, DictConfig) or depth == len(parts):
        return (
            f"{override}: there is no setting {full_key!r} to override. "
            "`vaegan-train --cfg job` prints every key with its value (docs/configuration.md)."
        )
    parent = ".".join(parts[:depth])
    missing = parts[depth]
    keys = sorted(str(k) for k in node.keys() if parent or k != "hydra")
    where = f"{parent} has no key {missing!r}" if parent else f"the config has no top-level key {missing!r}"
    choice = _group_choice(cfg, parts[0]) if parent else None
    if choice and choice != "default":
        where += f" (with {parts[0]}={choice})"
    close = difflib.get_close_matches(missing, keys, n=1, cutoff=0.6)
    hint = f"; did you mean {'.'.join([*parts[:depth], close[0]])}?" if close else "."
    listing = ", ".join(keys)
    name = f"Keys of {parent}" if parent else "Top-level keys"
    return (
        f"{override}: {where}{hint} {name}: {listing}. "
        "`vaegan-train --cfg job` prints every key with its value (docs/configuration.md)."
    )


def _group_choice(cfg: Any, group: str) -> str | None:
    """The config chosen for ``group`` in this composition (``vae`` for ``model``), if it is a group."""
    choice = cfg.hydra.runtime.choices.get(group)
    return str(choice) if choice is not None else None


def _missing_config(err: Any, job: list[str]) -> str | None:
    missing = getattr(err, "missing_cfg_file", None)
    options = getattr(err, "options", None)
    if not missing or "/" not in str(missing) or not options:
        return None
    group, name = str(missing).rsplit("/", 1)
    override = next((o for o in job if _key_of(o) == group.replace("/", ".") or _key_of(o) == group), f"{group}={name}")
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    hint = f" (did you mean {group}={close[0]}?)" if close else ""
    return (
        f"{override}: there is no {group} config named {name!r}{hint}. "
        f"The choices of {group} are: {', '.join(options)}."
    )
