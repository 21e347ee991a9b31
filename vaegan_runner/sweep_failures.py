"""How a multirun reports its failed jobs: one line each, then one exit code.

A job that fails (a config error, a divergence, a metric that could not be computed) writes
one record into ``<sweep dir>/.failed/`` and returns NaN (``FailedJob``), so the sweep goes on
with the other jobs (an Optuna search counts the trial as failed) instead of ending in a
traceback. When the
sweep is over, the ``SweepFailures`` callback prints one line per failed job and exits with
their exit code (the largest, if they differ). A sweep whose every job failed before writing
anything leaves no folder behind: its ``multirun.yaml`` and the records go, and the folder
too when this command made it; so does a sweep whose every job continued a run in that run's
own folder (``resume=auto`` on a sweep run before).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

from .atomic_write import write_text_atomic
from .config.run_dir import remove_if_empty_run

RECORDS = ".failed"


class FailedJob(float):
    """What a failed job returns to the sweeper: NaN to anything that reads it as a number, and
    a ``ValueError`` carrying the job's message to ``float()``. Hydra's Optuna sweeper calls
    ``float()`` on each trial's value and counts the trial as failed when that raises; a plain
    NaN would reach ``study.tell()``, which (optuna 2.10) refuses it with a traceback that ends
    the search."""

    reason: str  # the one line the sweep prints for this job

    def __new__(cls, job_num: int, message: str, code: int) -> FailedJob:
        value = super().__new__(cls, math.nan)
        value.reason = f"job {job_num} failed (exit {code}): {message.splitlines()[0] if message else ''}"
        return value

    def __reduce__(self):  # pickled by parallel launchers (joblib) with the reason, not just NaN
        return _failed_job_with_reason, (self.reason,)

    def __float__(self) -> float:
        raise ValueError(self.reason)

    def __repr__(self) -> str:
        return f"nan ({self.reason})"

    __str__ = __repr__


def _failed_job_with_reason(reason: str) -> FailedJob:
    value = float.__new__(FailedJob, math.nan)
    value.reason = reason
    return value


def record_failure(sweep_dir: str | Path, job_num: int, overrides: list[str], message: str, code: int) -> None:
    folder = Path(sweep_dir) / RECORDS
    folder.mkdir(parents=True, exist_ok=True)
    record = {"job": job_num, "overrides": list(overrides), "message": message, "code": code}
    write_text_atomic(folder / f"{job_num}.json", json.dumps(record))


def read_failures(sweep_dir: str | Path) -> list[dict]:
    folder = Path(sweep_dir) / RECORDS
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(records, key=lambda r: r["job"])


def report_failures(sweep_dir: str | Path) -> int:
    """Print one line per failed job of the sweep in ``sweep_dir``; their exit code, or 0."""
    sweep_dir = Path(sweep_dir)
    failures = read_failures(sweep_dir)
    if not failures:
        return 0
    for record in failures:
        print(f"job {record['job']} ({' '.join(record['overrides'])}): {record['message']}", file=sys.stderr)
    shutil.rmtree(sweep_dir / RECORDS, ignore_errors=True)
    remove_if_no_job_folder(sweep_dir)
    print(f"vaegan-train: {len(failures)} of the sweep's jobs failed (above)", file=sys.stderr)
    return max(record["code"] for record in failures)


def remove_if_no_job_folder(sweep_dir: Path) -> bool:
    """Remove a sweep folder that holds no job's run directory (only Hydra's ``multirun.yaml``),
    when this command made it: nothing in it is worth keeping. Whether it is gone."""
    if not sweep_dir.is_dir() or any(p.is_dir() for p in sweep_dir.iterdir()):
        return False
    (sweep_dir / "multirun.yaml").unlink(missing_ok=True)
    remove_if_empty_run(sweep_dir)
    return not sweep_dir.exists()


def refuse_jobs_side_by_side_of_zero(config) -> None:
    """``hydra.launcher.n_jobs=0`` (joblib) would end in joblib's traceback once the sweep has
    started; say which key and values are allowed before any job runs, and leave no folder."""
    from omegaconf import OmegaConf

    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    if isinstance(n_jobs, bool) or n_jobs != 0:  # other values are the launcher's to check
        return
    remove_if_no_job_folder(Path(config.hydra.sweep.dir))
    print(
        f"vaegan-train: error: hydra.launcher.n_jobs: {n_jobs!r} runs no job; give how many jobs run side by "
        "side (1 or more, or -1 for one per core)",
        file=sys.stderr,
    )
    sys.exit(2)


def remove_if_every_job_wrote_elsewhere(sweep_dir: Path) -> None:
    """A sweep whose jobs all continued runs in other folders (the same sweep relaunched with
    ``resume=auto``, or ``resume=<run>``) made no job folder here: its own folder would hold only
    ``multirun.yaml``, an empty sweep beside the real one. Remove it (when this command made it)
    and say where the jobs wrote."""
    if remove_if_no_job_folder(sweep_dir):
        print(
            f"vaegan-train: every job continued a run in that run's own folder (each job's log names it: "
            f"'writing to ...'), so this sweep's folder {sweep_dir} held nothing and is removed",
            file=sys.stderr,
        )


class SweepFailures:
    """A Hydra callback (``hydra.callbacks.sweep_failures``): after the sweep, one line per
    failed job and the exit code. Hydra turns a callback's exceptions into warnings, so this
    exits itself."""

    def on_multirun_end(self, config, **kwargs) -> None:
        code = report_failures(config.hydra.sweep.dir)
        if code:
            sys.stderr.flush()
            sys.exit(code)
        remove_if_every_job_wrote_elsewhere(Path(config.hydra.sweep.dir))

    def on_run_start(self, config, **kwargs) -> None: ...

    def on_run_end(self, config, **kwargs) -> None: ...

    def on_multirun_start(self, config, **kwargs) -> None:
        refuse_jobs_side_by_side_of_zero(config)

    def on_job_start(self, config, **kwargs) -> None: ...

    def on_job_end(self, config, **kwargs) -> None: ...
