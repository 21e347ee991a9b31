"""Names of multirun job directories: only the swept overrides, ``model=vae,optimizer.lr=0.001``.

Hydra's ``override_dirname`` joins every override of the command line, so a sweep with a
few fixed settings overflows the file-name limit and buries the keys that differ. The
``sweep_subdir`` resolver keeps the keys that the command line sweeps (``a=1,2``,
``range(...)``, ``choice(...)``), read with Hydra's own override parser.
"""

from __future__ import annotations

import hashlib
import os
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


SWEPT_OVERRIDES = "VAEGAN_SWEPT_OVERRIDES"  # set by RememberSweptOverrides for the job processes


class RememberSweptOverrides:
    """A Hydra callback: the multirun's command-line overrides, passed to the jobs through the
    environment. Jobs that a launcher runs in another process (submitit, SLURM) see that
    launcher's command line in ``sys.argv``, not the user's; the environment is inherited."""

    def on_multirun_start(self, config, **kwargs) -> None:
        os.environ[SWEPT_OVERRIDES] = "\n".join(config.hydra.overrides.task)

    def on_run_start(self, config, **kwargs) -> None: ...

    def on_run_end(self, config, **kwargs) -> None: ...

    def on_multirun_end(self, config, **kwargs) -> None: ...

    def on_job_start(self, config, **kwargs) -> None: ...

    def on_job_end(self, config, **kwargs) -> None: ...


def sweep_subdir(job_overrides, job_num) -> str:
    remembered = os.environ.get(SWEPT_OVERRIDES)
    keys = swept_keys(tuple(remembered.split("\n")) if remembered is not None else tuple(sys.argv[1:]))
    parts = sorted(
        o for o in job_overrides if o.split("=", 1)[0] in keys and o.split("=", 1)[0].lstrip("+~") not in _NOT_IN_NAME
    )
    name = ",".join(parts).replace("/", "_") or f"job{job_num}"
    if len(name) > MAX_NAME:
        name = f"{name[: MAX_NAME - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def register() -> None:
    OmegaConf.register_new_resolver("sweep_subdir", sweep_subdir, replace=True)
