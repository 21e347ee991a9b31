"""``vaegan-eval``: the metrics of any checkpoint, as a table and a JSON file.

    vaegan-eval outputs/vae-mnist/2026-11-23_10-00-00
    vaegan-eval run_dir/checkpoints/step_00009370.pt metrics=domain_fid,precision_recall n_samples=10000
    vaegan-eval run_dir metrics=inception_fid device=cuda out=fid.json
    vaegan-eval run_dir checkpoint=best        # the best checkpoint (checkpoint.keep_best)
    vaegan-eval run_dir prior=gmm              # samples from a mixture fitted to the training codes
    vaegan-eval samples=fakes/ dataset=mnist   # any samples: a folder of PNGs or an .npz

Defaults come from the run's own ``eval`` settings (its ``final_metrics`` and
``final_n_samples``); metrics that cannot run for the family or data are listed with why.
Naming an Inception metric (``inception_fid``, ``inception_kid``) runs it on the CPU too;
``inception_precision=fp32|bf16|auto`` sets the Inception network's arithmetic (the run's own
``eval.inception_precision`` otherwise).
``samples=`` scores images that did not come from a run (another tool's, a baseline's)
against ``dataset``'s held-out split with every metric that needs no model, stamped the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic_write import write_text_atomic
from ..config.checks import ConfigError, one_of
from ..run_schema import INCEPTION_PRECISIONS
from ..training.stopping import EXIT_CTRL_C
from .args import parse_settings
from .saved_run import CHECKPOINT_CHOICES, PRIOR_CHOICES, PRIOR_SETTINGS

SETTINGS = {  # key -> (type, default; None: the run's own setting)
    "metrics": (list, None),
    "n_samples": (int, None),
    "max_images": (int, None),
    "iwae_k": (int, None),
    "inception_precision": (str, None),  # auto | fp32 | bf16 (eval.inception_precision)
    "device": (str, None),
    "out": (str, None),
    "checkpoint": (str, "last"),  # of a run directory: its newest checkpoint, or best.pt (checkpoint.keep_best)
    "samples": (str, None),  # instead of a run: a folder of image files or an .npz
    "dataset": (str, None),  # with samples=: the dataset to compare them with
    **PRIOR_SETTINGS,  # prior=gmm: samples decode draws of a mixture fitted to the training codes
}
CHOICES = {  # settings with a fixed set of values: --help shows them
    "inception_precision": "|".join(INCEPTION_PRECISIONS),
    "checkpoint": "|".join(CHECKPOINT_CHOICES),
    "prior": "|".join(PRIOR_CHOICES),
}
MODEL_NEEDS = ("encoder", "likelihood")  # what given samples lack


def names_inception(metrics: list[str] | None) -> bool:
    """Whether the command line names an Inception metric: then it runs on the CPU too."""
    from ..metrics.registry import METRICS

    return any("inception" in METRICS[name].needs for name in metrics or [])


def check_counts(settings: dict) -> None:
    from ..metrics.registry import METRIC_NAMES, METRICS, MIN_REFERENCE

    for name in settings["metrics"] or []:
        if name not in METRIC_NAMES:
            raise ConfigError("metrics", f"unknown metric {name!r}; allowed: {', '.join(METRIC_NAMES)}")
    for key in ("n_samples", "max_images", "iwae_k"):
        if settings[key] is not None and settings[key] <= 0:
            raise ConfigError(
                key, f"must be a positive integer, got {settings[key]}; leave it out for the run's own setting"
            )
    if settings["metrics"] == []:
        raise ConfigError("metrics", f"names no metric; allowed: {', '.join(METRIC_NAMES)}")
    if settings["inception_precision"] is not None:
        one_of(settings["inception_precision"], INCEPTION_PRECISIONS, "inception_precision")
    comparing = [name for name in settings["metrics"] or METRIC_NAMES if "reference" in METRICS[name].needs]
    if settings["n_samples"] is not None and settings["n_samples"] < MIN_REFERENCE and comparing:
        raise ConfigError(
            "n_samples",
            f"must be >= {MIN_REFERENCE} for {', '.join(comparing)} (they compare samples with held-out images), "
            f"got {settings['n_samples']}",
        )


def precision_suffix(settings: dict) -> str:
    """``_fp32`` or ``_bf16`` (or ``_auto``) in the default report's name when ``inception_precision=``
    is given, so a report in another precision does not replace the run's own."""
    return f"_{settings['inception_precision']}" if settings["inception_precision"] else ""


def draws_samples(name: str) -> bool:
    """Whether metric ``name`` scores generated samples (what ``prior=`` changes)."""
    from ..metrics.registry import METRICS

    return not set(METRICS[name].needs) & {*MODEL_NEEDS, "classifier"}


def evaluate_checkpoint(target: str, pairs: list[str]) -> tuple[dict, Path]:
    from .saved_run import ex_post_prior, load_saved_run

    settings, overrides = parse_settings(pairs, SETTINGS)
    check_counts(settings)
    for key in ("samples", "dataset"):
        if settings[key] is not None:
            raise ConfigError(key, f"{key}= scores given samples and takes no run; give a run or samples=, not both")
    saved = load_saved_run(target, overrides, settings["device"], which=settings["checkpoint"])
    assert saved.data is not None  # with_data: loaded
    fitted = f"_gmm{settings['prior_components']}" if settings["prior"] == "gmm" else ""
    precision = precision_suffix(settings)
    out = report_path(settings["out"], saved.run_dir / f"eval_step_{saved.step:08d}{fitted}{precision}.json")
    cfg = saved.run.eval
    if settings["iwae_k"] is not None:
        cfg.iwae_k = settings["iwae_k"]
    if settings["inception_precision"] is not None:
        cfg.inception_precision = settings["inception_precision"]
    names = settings["metrics"] or cfg.final_metrics
    n_samples = settings["n_samples"] or cfg.final_n_samples
    max_images = settings["max_images"] or cfg.final_max_images
    if settings["prior"] == "gmm" and not any(draws_samples(name) for name in names):
        raise ConfigError(
            "prior",
            f"prior=gmm changes the samples, and none of the metrics {', '.join(names)} scores samples; "
            "name a sample metric (domain_fid, precision_recall, ...) or drop prior=",
        )
    prior = ex_post_prior(saved, settings["prior"], settings["prior_components"], cfg.batch_size)
    asked = "asked for" if settings["metrics"] else "of the run (eval.final_metrics)"
    scoring = Scoring(
        scored=saved.family,
        data=saved.data,
        cfg=cfg,
        names=names,
        n_samples=n_samples,
        max_images=max_images,
        inception_on_cpu=cfg.inception_on_cpu or names_inception(settings["metrics"]),
        progress_bar=saved.run.log.progress_bar,
        nothing_computable=f"none of the metrics {asked} can be computed here",
        source={"checkpoint": str(saved.checkpoint), "step": saved.step, "model": saved.run.model.name},
        prior=prior,
    )
    return score(scoring), out


def evaluate_samples(pairs: list[str]) -> tuple[dict, Path]:
    """Score the images of ``samples=`` against the held-out split of ``dataset=``."""
    from ..data import load_data
    from ..metrics.given_samples import GivenSamples, load_samples
    from ..metrics.registry import METRICS
    from ..training.device import resolve_device

    settings, overrides = parse_settings(pairs, SETTINGS)
    check_counts(settings)
    if not settings["dataset"]:
        raise ConfigError("dataset", "samples= needs the dataset to compare them with, e.g. dataset=mnist")
    moved = settings["prior"] != "model" or settings["prior_components"] != PRIOR_SETTINGS["prior_components"][1]
    if settings["checkpoint"] != "last" or settings["iwae_k"] is not None or moved:
        raise ConfigError(
            "samples",
            "given samples have no checkpoint, likelihood or prior: drop checkpoint=, iwae_k=, prior= "
            "and prior_components=",
        )
    run = compose_dataset_run([f"dataset={settings['dataset']}", *overrides])
    if settings["inception_precision"] is not None:
        run.eval.inception_precision = settings["inception_precision"]
    device = resolve_device(settings["device"] or "auto")
    images = load_samples(settings["samples"], run.dataset.channels, run.dataset.image_size)
    n_samples = settings["n_samples"] or len(images)
    if n_samples > len(images):
        raise ConfigError(
            "n_samples", f"{settings['samples']} holds {len(images)} images, fewer than n_samples={n_samples}"
        )
    model_free = [name for name in run.eval.final_metrics if not set(METRICS[name].needs) & set(MODEL_NEEDS)]
    names = settings["metrics"] or model_free
    source = Path(settings["samples"]).expanduser()
    stem = source.stem if source.is_file() else source.name
    out = report_path(settings["out"], source.parent / f"{stem}{precision_suffix(settings)}.eval.json")
    scoring = Scoring(
        scored=GivenSamples(images, device),  # stands in for a Family (given_samples.py)
        data=load_data(run.dataset, device),
        cfg=run.eval,
        names=names,
        n_samples=n_samples,
        max_images=settings["max_images"] or run.eval.final_max_images,
        inception_on_cpu=run.eval.inception_on_cpu or names_inception(settings["metrics"]),
        progress_bar=run.log.progress_bar,
        nothing_computable="none of the metrics asked for can be computed for given samples",
        source={"samples": str(source), "images": len(images), "model": "samples"},
    )
    return score(scoring), out


@dataclass
class Scoring:
    """What one ``vaegan-eval`` scores, from a checkpoint or from given samples: the model (or the
    samples standing in for one), the data it is compared with, the run's ``eval`` settings and the
    metrics with their sizes; ``source`` heads the report, ``nothing_computable`` is the error when
    no metric can run."""

    scored: Any  # a Family, or GivenSamples
    data: Any  # ImageData
    cfg: Any  # the eval settings
    names: list[str]
    n_samples: int
    max_images: int | None
    inception_on_cpu: bool
    progress_bar: bool
    nothing_computable: str
    source: dict
    prior: Any = None  # an ExPostPrior: samples decode its draws


def score(scoring: Scoring) -> dict:
    """The one evaluation flow of ``vaegan-eval``: the metrics of ``scoring``, shown and
    stoppable, as its JSON report; a ConfigError when none of them can be computed."""
    from ..metrics.evaluate import evaluate_metrics
    from ..metrics.resources import MetricResources

    device = scoring.scored.device
    resources = MetricResources(scoring.data, scoring.cfg, device, lambda m: print(m, file=sys.stderr))
    results = evaluate_metrics(
        scoring.names,
        scoring.scored,
        resources,
        n_samples=scoring.n_samples,
        max_images=scoring.max_images,
        inception_on_cpu=scoring.inception_on_cpu,
        prior=scoring.prior,
        progress=shown_progress(scoring.progress_bar),
    )
    if not results.values and results.complete:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in results.skipped.items())
        raise ConfigError("metrics", f"{scoring.nothing_computable} ({reasons})")
    prior_stamp = {"prior": scoring.prior.stamp} if scoring.prior else {}
    data = {"dataset": scoring.data.name, "data_source": scoring.data.source}
    return report_of(results, **scoring.source, **data, **prior_stamp)


def shown_progress(bar: bool):
    """The evaluation on stderr: a bar per metric (the run's ``log.progress_bar``, on a terminal)
    or its start line, and its seconds; Ctrl-C (Python's KeyboardInterrupt) stops it, keeping
    what finished."""
    from tqdm.auto import tqdm

    from ..metrics.progress import Progress

    return Progress(lambda message: tqdm.write(message, file=sys.stderr), bar and sys.stderr.isatty())


def report_path(out: str | None, default: Path) -> Path:
    """Where the JSON report goes: ``default``, ``out`` as a .json file, or ``out`` a folder (an
    existing one, a name ending in /, or a name without a suffix) holding the default name.
    Checked before any work: a ConfigError on ``out`` when it cannot be written."""
    if not out:
        path = default
    else:
        path = Path(out).expanduser()
        if path.is_dir() or out.endswith(("/", os.sep)) or not path.suffix:
            if path.exists() and not path.is_dir():
                raise ConfigError(
                    "out",
                    f"{path} is an existing file, not a folder; out= is the report's .json file name, or a "
                    f"folder to write {default.name} in (an existing one, or a new name without a suffix)",
                )
            path = path / default.name
        elif path.suffix.lower() != ".json":
            raise ConfigError("out", f"the report is JSON: give a .json file name or a folder, got {out!r}")
    if path.is_dir():
        raise ConfigError(
            "out", f"{path} is a folder; give a .json file name, or the folder to write {default.name} in"
        )
    target = path if path.exists() else next(p for p in path.parents if p.exists())
    if target != path and not target.is_dir():
        raise ConfigError("out", f"cannot write {path}: {target} is a file, not a folder; give another out=")
    if not os.access(target, os.W_OK):
        raise ConfigError("out", f"cannot write {path}: {target} is not writable; give another out=")
    return path


def write_report(report: dict, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    except OSError as err:
        raise ConfigError("out", f"cannot write {out}: {err.strerror or err}; give another out=") from None


def report_of(results, **source) -> dict:
    """The JSON report: what was scored (``source``), then the values, their protocols, their
    cost and what was skipped with why."""
    return {
        **source,
        "metrics": results.values,
        "metric_counts": results.counts,
        "metric_seconds": {k: round(v, 2) for k, v in results.seconds.items()},
        "metrics_skipped": results.skipped,
        "complete": results.complete,  # false: Ctrl-C stopped it (metrics_skipped: stopped)
    }


def compose_dataset_run(overrides: list[str]):
    """The validated run config of the config tree with ``overrides`` (``dataset=mnist``)."""
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from ..run_schema import validate
    from ..train import config_dir

    where = config_dir()
    GlobalHydra.instance().clear()
    context: initialize_config_module | initialize_config_dir
    if where.startswith("pkg://"):
        context = initialize_config_module(where.removeprefix("pkg://"), version_base="1.3")
    else:
        context = initialize_config_dir(where, version_base="1.3")
    try:
        with context:
            cfg = compose(config_name="train", overrides=overrides)
    except HydraException as err:
        raise ConfigError("dataset", str(err).splitlines()[0]) from None
    finally:
        GlobalHydra.instance().clear()
    return validate(cfg)


def format_table(report: dict) -> str:
    from ..metrics.registry import VALUE_NAMES

    source = (
        f"{report['images']} samples from {report['samples']}"
        if "samples" in report
        else f"{report['model']} at step {report['step']} ({report['checkpoint']})"
    )
    lines = [
        f"{source}, against the held-out split of {report['dataset']}",
        "",
        "| metric | value | computed on |",
        "|---|---:|---|",
    ]
    for value_name, value in report["metrics"].items():
        counts = report["metric_counts"].get(VALUE_NAMES[value_name], {})
        lines.append(f"| {value_name} | {value:.4f} | {', '.join(f'{k}={v}' for k, v in counts.items())} |")
    for name, reason in report["metrics_skipped"].items():
        lines.append(f"| {name} | - | not computed: {reason} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    listed = ", ".join(f"{key}={CHOICES.get(key, '')}" for key in SETTINGS)
    parser = argparse.ArgumentParser(
        prog="vaegan-eval", description=__doc__.split("\n\n")[0], epilog=f"settings: {listed}, dataset.<key>="
    )
    parser.add_argument("target", nargs="?", help="a run directory or a checkpoint file (or samples= instead)")
    parser.add_argument("settings", nargs="*", help="key=value")
    args = parser.parse_args(argv)
    try:
        if args.target is None or args.target.startswith("samples="):
            given = args.settings if args.target is None else [args.target, *args.settings]
            if not any(pair.startswith("samples=") for pair in given):
                raise ConfigError("target", "give a run directory or checkpoint file, or samples=<folder|.npz>")
            report, out = evaluate_samples(given)
        else:
            report, out = evaluate_checkpoint(args.target, args.settings)
        write_report(report, out)
    except (ConfigError, OSError) as err:
        print(f"vaegan-eval: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nvaegan-eval: stopped by Ctrl-C before any metric ran; nothing written", file=sys.stderr)
        return EXIT_CTRL_C
    print(format_table(report))
    print(f"\nwritten to {out}")
    if not report["complete"]:
        print(stopped_message(report, out, args.target, args.settings), file=sys.stderr)
        return EXIT_CTRL_C
    return 0


def stopped_message(report: dict, out: Path, target: str | None, settings: list[str]) -> str:
    """What a stopped ``vaegan-eval`` says: what finished, where it is, the command for the rest."""
    from ..metrics.results import STOPPED

    done = ", ".join(report["metric_seconds"])
    rest = ",".join(name for name, reason in report["metrics_skipped"].items() if reason == STOPPED)
    kept = [pair for pair in settings if not pair.startswith("metrics=")]
    again = " ".join([*([target] if target else []), *kept, f"metrics={rest}"])
    return (
        f"vaegan-eval: evaluation stopped by Ctrl-C {f'after {done}' if done else 'before its first metric'}; "
        f'{out} holds what finished ("complete": false); `vaegan-eval {again}` computes the rest'
    )


if __name__ == "__main__":
    sys.exit(main())
