"""Quality of the five families on real MNIST with one fixed budget and seed, as a table.

    VAEGAN_DATA_DIR=../shared/data python scripts/benchmark_quality.py --epochs 3 --out /tmp/quality

Trains every family with ``vaegan-train model=<family> dataset=mnist trainer.max_epochs=E
seed=S`` (its default config; the VAE on dynamically binarised MNIST so that its likelihood is
comparable with the published binarised-MNIST numbers), lets the run's own final evaluation
compute the metrics on 10k samples and the 10k test images, and prints a markdown table:
seconds per epoch (training only, from the logged throughput), domain FID, Inception FID (when
``--inception`` and time allow: about 4 images/s on a 2-core CPU), precision, recall, class
coverage, test negative ELBO and IWAE bound (k=100) where the family has a likelihood, and the
linear-probe and 1-nearest-neighbour accuracy of the test codes where it has an encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ["vae", "gan", "vaegan", "aae", "bigan"]
EXTRA = {"vae": ["dataset.binarize=true"]}  # binarised MNIST, as the likelihood references
COLUMNS = [("domain_fid", "domain FID", "{:.1f}"), ("classifier_score", "classifier score", "{:.2f}"),
           ("inception_fid", "Inception FID", "{:.1f}"),
           ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
           ("class_coverage", "classes", "{:.0f}"), ("neg_elbo", "-ELBO (nats)", "{:.1f}"),
           ("iwae_nll", "IWAE-100 NLL (nats)", "{:.1f}"), ("probe_acc", "linear probe", "{:.1%}"),
           ("nn_acc", "1-NN", "{:.1%}")]


def train(family: str, epochs: int, seed: int, out: Path, inception: bool, extra: list[str]) -> dict:
    run_dir = out / family
    args = [sys.executable, "-m", "vaegan_runner.train", f"model={family}", "dataset=mnist",
            f"trainer.max_epochs={epochs}", f"seed={seed}", f"hydra.run.dir={run_dir}", "log.progress_bar=false",
            "eval.every_n_steps=1000000", "log.image_every_n_steps=1000000", "checkpoint.every_n_steps=1000000",
            f"eval.inception_on_cpu={str(inception).lower()}", *EXTRA.get(family, []), *extra]
    if not inception:
        args.append("eval.final_metrics=[domain_fid,classifier_score,class_coverage,precision_recall,"
                    "diversity,neg_elbo,iwae,recon_mse,linear_probe,nearest_neighbour]")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.time()
    result = subprocess.run(args, cwd=out, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{family} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["wall_seconds"] = time.time() - started
    metrics["seconds_per_epoch"] = training_seconds_per_epoch(run_dir, metrics["images_seen"] / epochs)
    metrics["command"] = " ".join(a for a in args[2:] if not a.startswith("hydra.run.dir"))
    return metrics


def training_seconds_per_epoch(run_dir: Path, images_per_epoch: float) -> float:
    """From ``perf/images_per_sec``: training time only, without evaluation or checkpoints."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    rates = [e.value for e in acc.Scalars("perf/images_per_sec")]
    return images_per_epoch / (sum(rates) / len(rates))


def real_images_row(n: int) -> dict:
    """The metrics of ``n`` real training images against the held-out split: the floor the
    families' numbers should be read against (FID of real against real is not 0 at finite n)."""
    import torch
    from omegaconf import OmegaConf

    from vaegan_runner.config import typed
    from vaegan_runner.data import dataset_schema, load_data
    from vaegan_runner.metrics.classifier_score import class_coverage, classifier_score
    from vaegan_runner.metrics.context import MetricResources, unit_batches
    from vaegan_runner.metrics.frechet import FeatureStats, frechet_distance
    from vaegan_runner.metrics.precision_recall import precision_recall
    from vaegan_runner.run_config import EvalConfig

    node = OmegaConf.load(REPO / "configs" / "dataset" / "mnist.yaml")
    data = load_data(typed(dataset_schema("mnist"), node, "dataset"), torch.device("cpu"))
    eval_node = OmegaConf.load(REPO / "configs" / "eval" / "default.yaml")
    resources = MetricResources(data, typed(EvalConfig, eval_node, "eval"), torch.device("cpu"), print)
    classifier = resources.domain_classifier
    parts = [classifier.features_and_logits(images.float() / 255) for images, _ in unit_batches(data.train, 500, n)]
    features, logits = torch.cat([f for f, _ in parts]), torch.cat([lg for _, lg in parts])
    reference, stats = resources.domain_reference()
    precision, recall = precision_recall(reference[:n], features, k=3)
    return {"seconds_per_epoch": float("nan"), "metrics/domain_fid": frechet_distance(FeatureStats.from_features(features), stats),
            "metrics/precision": precision, "metrics/recall": recall,
            "metrics/class_coverage": float(class_coverage(logits, 10)),
            "metrics/classifier_score": classifier_score(logits),
            "metric_counts": {"domain_fid": {"samples": n, "reference": stats.count}}}


def table(rows: dict[str, dict], epochs: int) -> str:
    header = ["family", "s/epoch"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for family, m in rows.items():
        cells = [family, "-" if m["seconds_per_epoch"] != m["seconds_per_epoch"] else f"{m['seconds_per_epoch']:.0f}"]
        for key, _, fmt in COLUMNS:
            value = m.get(f"metrics/{key}")
            cells.append(fmt.format(value) if value is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    counts = next(iter(rows.values()))["metric_counts"]
    lines.append("")
    lines.append(f"{epochs} epochs, seed fixed; FID and precision/recall: {counts.get('domain_fid', {})}; "
                 f"likelihoods on {counts.get('iwae', {}).get('images', '-')} test images; probes: "
                 f"{counts.get('linear_probe', {})}.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=FAMILIES)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inception", action="store_true", help="Inception FID on CPU too (slow)")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmark_quality"))
    parser.add_argument("--reuse", type=Path, help="a results.json of an earlier run: its families are not trained again")
    parser.add_argument("--real-images", type=int, default=10000,
                        help="also score this many real training images (0: no such row)")
    parser.add_argument("overrides", nargs="*", help="extra vaegan-train overrides for every family")
    args = parser.parse_args()
    if not os.environ.get("VAEGAN_DATA_DIR"):
        print("note: VAEGAN_DATA_DIR is not set; MNIST is read from ./data or downloaded", file=sys.stderr)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = json.loads(args.reuse.read_text()) if args.reuse else {}
    for family in [f for f in args.families if f not in rows]:
        rows[family] = train(family, args.epochs, args.seed, args.out, args.inception, args.overrides)
        print(f"{family}: done in {rows[family]['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
        (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    if args.real_images:
        rows["real training images"] = real_images_row(args.real_images)
    print(f"python scripts/benchmark_quality.py --epochs {args.epochs} --seed {args.seed}"
          + (" --inception" if args.inception else "") + "".join(f" {o}" for o in args.overrides) + "\n")
    print(table(rows, args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
