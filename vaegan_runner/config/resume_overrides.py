"""``vaegan-train resume=<run>`` brings the run's own command-line settings with it.

Hydra keeps the overrides a run was started with in ``<run dir>/.hydra/overrides.yaml``. Without
them, ``vaegan-train resume=outputs/gan-mnist/<time>`` would compose the default model (the VAE)
and be refused as another run, and ``resume=<a VAE-GAN run> model.gamma=0.2`` would fail in
Hydra, since the default model has no ``gamma``. So before Hydra reads the command line, the
saved overrides are put in front of it; an override given on the command line wins over a saved
one with the same key. ``resume=auto`` and a run directory without Hydra's record (a run
trained from Python) are left as they are.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from .run_dir import run_dir_of

RECORD = Path(".hydra") / "overrides.yaml"
NOT_CARRIED = ("resume", "hydra")  # the resume itself, and where Hydra writes: this command's own


def override_key(override: str) -> str:
    """``model.gamma`` for ``model.gamma=0.2``, ``+model.gamma=0.2`` or ``~model.gamma``."""
    return override.split("=", 1)[0].lstrip("+~")


def override_value(override: str) -> str:
    """The value of ``key=value`` as Hydra reads it: ``/runs/my run (2)`` for
    ``resume="/runs/my run (2)"``, quoted for Hydra because of its brackets."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        value = OverridesParser.create().parse_overrides([override])[0].value()
    except Exception:  # not one value (a sweep, a parse error): Hydra itself says what is wrong
        return override.split("=", 1)[1]
    return value if isinstance(value, str) else override.split("=", 1)[1]


def recorded_run(target: str) -> Path | None:
    """The run directory ``target`` names (itself, or the run a checkpoint file belongs to) when
    it holds Hydra's record, else None."""
    path = Path(target).expanduser()
    if path.is_file():
        path = run_dir_of(path)
    return path if (path / RECORD).is_file() else None


def saved_overrides(run_dir: Path) -> list[str]:
    """The run's own overrides, less those that belong to the command that resumes it."""
    saved = OmegaConf.to_container(OmegaConf.load(run_dir / RECORD))
    if not isinstance(saved, list):
        return []
    return [str(o) for o in saved if override_key(str(o)).split(".", 1)[0] not in NOT_CARRIED]


def with_run_settings(args: list[str]) -> list[str]:
    """``args`` (a command line without the program) with the resumed run's own overrides in
    front, where ``resume=`` names a run directory or a checkpoint in one."""
    targets = [override_value(a) for a in args if "=" in a and override_key(a) == "resume"]
    if len(targets) != 1 or targets[0] in ("", "auto", "null"):
        return args
    run_dir = recorded_run(targets[0])
    if run_dir is None:
        return args
    given = {override_key(a) for a in args if not a.startswith("-")}
    return [o for o in saved_overrides(run_dir) if override_key(o) not in given] + args
