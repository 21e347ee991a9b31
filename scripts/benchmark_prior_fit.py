"""Where finished autoencoder runs lose sample quality: decoder or prior. One table per dataset.

    VAEGAN_DATA_DIR=../shared/data python scripts/benchmark_prior_fit.py \
        outputs/benchmark_quality/3-epochs/mnist/{vae,aae}/seed=*

For each run (a run directory with a checkpoint and a model with an encoder, e.g. those of
``benchmark_quality.py``), ``vaegan-eval`` computes on its last checkpoint: domain FID and
recall of samples decoded from the model's prior (``prior=model``), the same of samples decoded
from a Gaussian mixture fitted to the training codes (``prior=gmm``, ``--components`` Gaussians;
``vaegan_runner/models/fitted_prior.py``), and ``recon_fid``, the domain FID of held-out
reconstructions. Rows are families, mean ± standard deviation over the runs given; each value on
the run's own ``eval.final_n_samples`` samples (10000 by default; the line under the table says)
against its held-out split. Each run's report is written next to it
(``eval_prior_fit_<prior>.json``), and is reused while it is of the run's newest checkpoint. A
run that cannot be scored (no encoder, no checkpoint) is skipped with the reason, the others
still make the table, and the exit code is 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_runs import mean_std  # noqa: E402

METRICS = {"model": "domain_fid,precision_recall,recon_fid", "gmm": "domain_fid,precision_recall"}


def evaluate(run_dir: Path, prior: str, components: int) -> dict:
    """The metrics of one run with one prior (the saved report when it is of the run's newest
    checkpoint; a resumed run's new checkpoint is evaluated again)."""
    from vaegan_runner.cli.eval import evaluate_checkpoint, write_report
    from vaegan_runner.training.checkpoint import find_checkpoint

    out = run_dir / f"eval_prior_fit_{prior if prior == 'model' else f'gmm{components}'}.json"
    newest = find_checkpoint(str(run_dir), key="checkpoint").resolve()
    if not out.is_file() or Path(json.loads(out.read_text()).get("checkpoint", "")).resolve() != newest:
        settings = [f"metrics={METRICS[prior]}", f"prior={prior}", f"out={out}"]
        if prior == "gmm":
            settings.append(f"prior_components={components}")
        report, _ = evaluate_checkpoint(str(run_dir), settings)
        write_report(report, out)
    return json.loads(out.read_text())


def table(rows: dict[str, list[tuple[dict, dict]]], components: int) -> str:
    lines = [
        f"| family | runs | domain FID, model prior | domain FID, GMM-{components} | recall, model prior "
        f"| recall, GMM-{components} | recon FID |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for family, runs in rows.items():
        model = [r["metrics"] for r, _ in runs]
        gmm = [g["metrics"] for _, g in runs]
        cells = [
            mean_std([m["domain_fid"] for m in model], "{:.1f}"),
            mean_std([g["domain_fid"] for g in gmm], "{:.1f}"),
            mean_std([m["recall"] for m in model], "{:.3f}"),
            mean_std([g["recall"] for g in gmm], "{:.3f}"),
            mean_std([m["recon_fid"] for m in model], "{:.1f}"),
        ]
        lines.append(f"| {family} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--components", type=int, default=10)
    args = parser.parse_args()
    from vaegan_runner.config.checks import ConfigError

    if args.components < 1:
        parser.error(f"--components must be at least 1, got {args.components}")
    if missing := [str(run) for run in args.runs if not run.is_dir()]:
        parser.error(f"not a run directory: {', '.join(missing)} (give the folders that hold checkpoints/)")
    by_dataset: dict[str, dict[str, list]] = {}
    failed = []
    for run_dir in args.runs:
        try:  # the mixture first: a run it cannot fit (no encoder) is refused before any evaluation
            gmm, model = evaluate(run_dir, "gmm", args.components), evaluate(run_dir, "model", args.components)
        except ConfigError as err:
            print(f"{run_dir}: skipped: {err}", file=sys.stderr, flush=True)
            failed.append(run_dir)
            continue
        by_dataset.setdefault(model["dataset"], {}).setdefault(model["model"], []).append((model, gmm))
        print(f"{run_dir}: done", file=sys.stderr, flush=True)
    for dataset, rows in by_dataset.items():
        print(f"\n### {dataset}: python scripts/benchmark_prior_fit.py {' '.join(sys.argv[1:])}\n")
        print(table(rows, args.components))
        stamps = [g["metric_counts"]["domain_fid"] for runs in rows.values() for _, g in runs]
        counts = {f"samples {c['samples']}, reference {c['reference']}" for c in stamps}
        print(f"\ndomain_fid: {' | '.join(sorted(counts))}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
