"""Mean and standard deviation over seeds of finished runs, as a markdown table.

    python scripts/summarize_runs.py outputs/recipes            # one row per <setting>/ folder
    python scripts/summarize_runs.py outputs/recipes --only gan-old gan-ttur
    python scripts/summarize_runs.py outputs/conditional --jobs  # one row per job of one sweep

Reads every ``<root>/<setting>/<job>/metrics.json`` (a sweep over seeds writes one job folder
per seed) and the training throughput logged in the job's TensorBoard events, and prints one
row per setting: the number of seeds, then mean ± standard deviation (over seeds, n-1) of the
sample metrics, the likelihood and reconstruction where the family has them, and the training
seconds per epoch (evaluation excluded). A setting with unfinished jobs shows what finished.
With ``--jobs``, ``<root>`` is one sweep and each ``<root>/<job>/`` is a row of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from vaegan_runner.training.run_record import with_final_names

COLUMNS = [  # (key in metrics.json, title, format, lower is better)
    ("final/inception_fid", "Inception FID", "{:.1f}", True),
    ("final/inception_kid", "Inception KID", "{:.4f}", True),
    ("final/inception_score", "IS", "{:.2f}", False),
    ("final/domain_fid", "domain FID", "{:.1f}", True),
    ("final/classifier_score", "classifier score", "{:.2f}", False),
    ("final/class_coverage", "classes", "{:.1f}", False),
    ("final/precision", "precision", "{:.3f}", False),
    ("final/recall", "recall", "{:.3f}", False),
    ("final/diversity", "diversity", "{:.3f}", False),
    ("final/neg_elbo", "-ELBO (nats)", "{:.1f}", True),
    ("final/iwae_nll", "IWAE NLL (nats)", "{:.1f}", True),
    ("final/iwae_bits_per_dim", "bits/dim", "{:.2f}", True),
    ("final/recon_mse", "recon MSE", "{:.4f}", True),
    ("final/probe_acc", "linear probe", "{:.3f}", False),
    ("final/nn_acc", "1-NN", "{:.3f}", False),
    ("final/label_accuracy", "label accuracy", "{:.3f}", False),
    ("final/intra_fid", "intra-FID", "{:.1f}", True),
    ("final/classifier_error", "classifier error", "{:.4f}", True),
    ("seconds_per_epoch", "s/epoch", "{:.0f}", True),
]


def seconds_per_epoch(run_dir: Path, images_per_epoch: int) -> float | None:
    """Training seconds per epoch from the mean logged ``perf/images_per_sec``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if "perf/images_per_sec" not in acc.Tags()["scalars"]:
        return None
    rates = [e.value for e in acc.Scalars("perf/images_per_sec")]
    return images_per_epoch / statistics.fmean(rates)


def read_job(job: Path, images_per_epoch: int) -> dict:
    metrics = with_final_names(json.loads((job / "metrics.json").read_text()))  # any runner's file
    metrics["seconds_per_epoch"] = seconds_per_epoch(job, images_per_epoch)
    return metrics


def mean_std(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(statistics.stdev(values))}"


def summarize(settings: dict[str, list[dict]], row: str = "setting") -> str:
    """A markdown table, a row per setting (its runs' mean ± std) or, ``row="job"``, per job."""
    used = [c for c in COLUMNS if any(m.get(c[0]) is not None for jobs in settings.values() for m in jobs)]
    header = [row] + (["seeds"] if row == "setting" else []) + [title for _, title, _, _ in used]
    lines = ["| " + " | ".join(header) + " |", "|---|" + ("---:|" if row == "setting" else "") + "---:|" * len(used)]
    for name, jobs in settings.items():
        cells = [name] + ([str(len(jobs))] if row == "setting" else [])
        for key, _, fmt, _ in used:
            cells.append(mean_std([m[key] for m in jobs if m.get(key) is not None], fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def collect_jobs(root: Path, images_per_epoch: int) -> dict[str, list[dict]]:
    """One 'setting' per finished job folder of one sweep."""
    return {
        job.name: [read_job(job, images_per_epoch)]
        for job in sorted(p for p in root.iterdir() if (p / "metrics.json").is_file())
    }


def collect(root: Path, only: list[str] | None, images_per_epoch: int) -> dict[str, list[dict]]:
    settings = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if only and folder.name not in only:
            continue
        jobs = [read_job(j, images_per_epoch) for j in sorted(folder.iterdir()) if (j / "metrics.json").is_file()]
        if jobs:
            settings[folder.name] = jobs
    if only:
        settings = {name: settings[name] for name in only if name in settings}
    return settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a folder of <setting>/<job>/metrics.json")
    parser.add_argument("--only", nargs="+", help="these settings, in this order")
    parser.add_argument("--images-per-epoch", type=int, default=60000, help="the training split's size")
    parser.add_argument("--jobs", action="store_true", help="root is one sweep: a row per job folder")
    args = parser.parse_args()
    if not args.root.is_dir():
        print(f"summarize_runs: {args.root} is not a folder (give the folder that holds the runs)", file=sys.stderr)
        return 2
    if args.jobs:
        settings = collect_jobs(args.root, args.images_per_epoch)
    else:
        settings = collect(args.root, args.only, args.images_per_epoch)
    if not settings:
        print(f"no finished runs (metrics.json) under {args.root}", file=sys.stderr)
        return 1
    print(summarize(settings, "job" if args.jobs else "setting"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
