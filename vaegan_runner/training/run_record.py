"""A run's record of itself: ``metrics.json`` (its final numbers) and its settings as the flat
scalars of TensorBoard's HPARAMS tab, both with the version of the runner that wrote them."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic_write import write_text_atomic
from ..metrics.results import MetricResults
from ..version import __version__

HPARAM_GROUPS = ("model", "dataset", "optimizer", "trainer")
FINAL = "final/"  # an end-of-run metric value's name: metrics.json, TensorBoard's scalars and HPARAMS
BEFORE_0_4_FINAL = "metrics/"  # the same in the metrics.json of runners before 0.4.0 (the during-training tag)


def write_metrics_json(
    path: Path,
    step: int,
    images_seen: int,
    train_images: int,
    eval_images: int,
    final: dict[str, float],
    results: MetricResults,
    data_source: str = "",
) -> None:
    """The run's final numbers: family scalars (``eval/``), metrics (``final/``), and for each
    metric what it was computed on (FID depends on the sample count); ``train_images`` is the
    training split's size (an epoch), ``images_seen`` what training went through;
    ``runner_version`` the runner that finished the run; ``data_source`` the copy of the data
    (``ImageData.source``: where it was read from and the digest every metric stamp carries)."""
    write_text_atomic(
        path,
        json.dumps(
            {
                "runner_version": __version__,
                "step": step,
                "images_seen": images_seen,
                "train_images": train_images,
                "eval_images": eval_images,
                "data_source": data_source,
                **final_values(final, results),
                "metric_counts": results.counts,
                "metric_seconds": {k: round(v, 2) for k, v in results.seconds.items()},
                "metrics_skipped": results.skipped,
                "complete": results.complete,  # false: a signal stopped the evaluation (metrics_skipped: stopped)
            },
            indent=2,
        )
        + "\n",
    )


def final_values(final: dict[str, float], results: MetricResults) -> dict[str, float]:
    """The run's end-of-run values under the names ``metrics.json`` and the last log line give
    them: the family's held-out scalars as ``eval/<term>``, the metrics as ``final/<value>``."""
    return {
        **{f"eval/{k}" if "/" not in k else k: v for k, v in final.items()},
        **{f"{FINAL}{k}": v for k, v in results.values.items()},
    }


def evaluation_complete(path: Path) -> bool:
    """Whether ``path`` (a run's ``metrics.json``) exists and holds a whole evaluation, not one
    a signal stopped (``"complete": false``; files from before the key are whole)."""
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("complete", True) is not False
    except (OSError, ValueError):
        return False


def finished_results(path: Path) -> dict[str, float]:
    """What ``fit`` returned when the run finished, read back from its ``metrics.json``:
    resuming a finished run (``resume=auto`` over a sweep that was interrupted part-way) does
    not train or evaluate it again."""
    saved = json.loads(path.read_text())
    return {
        **{k: v for k, v in saved.items() if k.startswith("eval/")},
        **{k.removeprefix(FINAL): v for k, v in with_final_names(saved).items() if k.startswith(FINAL)},
    }


def with_final_names(saved: dict) -> dict:
    """A ``metrics.json``'s contents with the end-of-run values under ``final/``, whichever
    runner wrote it (before 0.4.0 they were under ``metrics/``, the name TensorBoard gives the
    values computed during training)."""
    if any(k.startswith(FINAL) for k in saved):
        return saved
    return {
        (FINAL + k.removeprefix(BEFORE_0_4_FINAL) if k.startswith(BEFORE_0_4_FINAL) else k): v for k, v in saved.items()
    }


def hparam_values(resolved: dict, data_source: str = "") -> dict[str, float | int | str | bool]:
    """The run's settings as flat ``group.key`` scalars for TensorBoard's HPARAMS tab, with the
    runner's version (``runner_version``) and the copy of the data (``data_source``), so runs of
    different versions or data can be told apart."""
    flat: dict[str, float | int | str | bool] = {"runner_version": __version__, "seed": resolved["seed"]}
    if data_source:
        flat["data_source"] = data_source
    for group in HPARAM_GROUPS:
        _flatten(group, resolved[group], flat)
    return flat


def protocol_hparams(counts: dict[str, dict]) -> dict[str, str]:
    """Each final metric's stamp (what it was computed on, ``MetricResults.counts``) as one
    HPARAMS text column, ``protocol/<metric>``: values with different stamps are not comparable."""
    return {f"protocol/{name}": ", ".join(f"{k}={v}" for k, v in stamp.items()) for name, stamp in counts.items()}


def _flatten(prefix: str, node, flat: dict) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(f"{prefix}.{key}", value, flat)
    elif prefix not in ("dataset.root", "dataset.cache_dir"):
        flat[prefix] = node if isinstance(node, (int, float, str, bool)) else str(node)
