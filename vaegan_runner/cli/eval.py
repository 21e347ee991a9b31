"""``vaegan-eval``: the metrics of any checkpoint, as a table and a JSON file.

    vaegan-eval outputs/vae-mnist/2026-11-23_10-00-00
    vaegan-eval run_dir/checkpoints/step_00009370.pt metrics=domain_fid,precision_recall n_samples=10000
    vaegan-eval run_dir metrics=inception_fid device=cuda out=fid.json
    vaegan-eval run_dir checkpoint=best        # the best checkpoint (checkpoint.keep_best)

Defaults come from the run's own ``eval`` settings (its ``final_metrics`` and
``final_n_samples``); metrics that cannot run for the family or data are listed with why.
Naming ``inception_fid`` explicitly runs it on CPU too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config.checks import ConfigError
from .args import parse_settings

SETTINGS = {  # key -> (type, default; None: the run's own setting)
    "metrics": (list, None),
    "n_samples": (int, None),
    "max_images": (int, None),
    "iwae_k": (int, None),
    "device": (str, None),
    "out": (str, None),
    "checkpoint": (str, "last"),  # of a run directory: its newest checkpoint, or best.pt (checkpoint.keep_best)
}


def evaluate_checkpoint(target: str, pairs: list[str]) -> tuple[dict, Path]:
    from ..metrics.context import MetricResources, evaluate_metrics
    from ..metrics.registry import METRIC_NAMES
    from .saved_run import load_saved_run

    settings, overrides = parse_settings(pairs, SETTINGS)
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
    saved = load_saved_run(target, overrides, settings["device"], which=settings["checkpoint"])
    cfg = saved.run.eval
    if settings["iwae_k"] is not None:
        cfg.iwae_k = settings["iwae_k"]
    names = settings["metrics"] or cfg.final_metrics
    n_samples = settings["n_samples"] or cfg.final_n_samples
    max_images = settings["max_images"] or cfg.final_max_images
    resources = MetricResources(saved.data, cfg, saved.family.device, lambda m: print(m, file=sys.stderr))
    results = evaluate_metrics(
        names,
        saved.family,
        resources,
        n_samples=n_samples,
        max_images=max_images,
        inception_on_cpu=cfg.inception_on_cpu or "inception_fid" in (settings["metrics"] or []),
    )
    if settings["metrics"] and not results.values:  # asked for by name, and none could run
        reasons = "; ".join(f"{name}: {reason}" for name, reason in results.skipped.items())
        raise ConfigError("metrics", f"none of the metrics asked for can be computed here ({reasons})")
    report = {
        "checkpoint": str(saved.checkpoint),
        "step": saved.step,
        "model": saved.run.model.name,
        "dataset": saved.data.name,
        "metrics": results.values,
        "metric_counts": results.counts,
        "metric_seconds": {k: round(v, 2) for k, v in results.seconds.items()},
        "metrics_skipped": results.skipped,
    }
    out = Path(settings["out"]) if settings["out"] else saved.run_dir / f"eval_step_{saved.step:08d}.json"
    return report, out


def format_table(report: dict) -> str:
    from ..metrics.registry import VALUE_NAMES

    lines = [
        f"{report['model']} on {report['dataset']}, step {report['step']} ({report['checkpoint']})",
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
    parser = argparse.ArgumentParser(
        prog="vaegan-eval",
        description=__doc__.split("\n\n")[0],
        epilog=f"settings: {', '.join(f'{k}=' for k in SETTINGS)}, dataset.<key>=",
    )
    parser.add_argument("target", help="a run directory or a checkpoint file")
    parser.add_argument("settings", nargs="*", help="key=value")
    args = parser.parse_args(argv)
    try:
        report, out = evaluate_checkpoint(args.target, args.settings)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    except (ConfigError, OSError) as err:
        print(f"vaegan-eval: error: {err}", file=sys.stderr)
        return 2
    print(format_table(report))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
