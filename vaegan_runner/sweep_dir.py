"""Names of multirun job directories: only the swept overrides, ``model=vae,optimizer.lr=0.001``.

Hydra's ``override_dirname`` joins every override of the command line, so a sweep with a
few fixed settings overflows the file-name limit and buries the keys that differ. The
``sweep_subdir`` resolver keeps the keys that the command line sweeps (``a=1,2``,
``range(...)``, ``choice(...)``), read with Hydra's own override parser.
"""

from __future__ import annotations

import hashlib
import sys
from functools import lru_cache

from omegaconf import OmegaConf

MAX_NAME = 200
_NOT_IN_NAME = {"dataset.root", "resume", "device"}


@lru_cache(maxsize=1)
def swept_keys(argv: tuple[str, ...]) -> frozenset[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception:  # a malformed override is Hydra's to report, not ours
        return frozenset()
    return frozenset(o.get_key_element() for o in overrides if o.is_sweep_override())


def sweep_subdir(job_overrides, job_num) -> str:
    keys = swept_keys(tuple(sys.argv[1:]))
    parts = sorted(o for o in job_overrides if o.split("=", 1)[0] in keys
                   and o.split("=", 1)[0].lstrip("+~") not in _NOT_IN_NAME)
    name = ",".join(parts).replace("/", "_") or f"job{job_num}"
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def register() -> None:
    OmegaConf.register_new_resolver("sweep_subdir", sweep_subdir, replace=True)
