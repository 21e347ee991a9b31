"""Quality of the five families with their default recipes, over seeds and datasets, as tables.

    VAEGAN_DATA_DIR=../shared/data python scripts/benchmark_quality.py --epochs 3 --seeds 0 1 2 \
        --datasets mnist fashion_mnist --out outputs/benchmark_quality
    VAEGAN_DATA_DIR=../shared/data python scripts/benchmark_quality.py --default-epochs --seeds 0

Trains every family with ``vaegan-train model=<family> dataset=<dataset> seed=<seed>
trainer.max_epochs=E`` (its default recipe; the VAE on dynamically binarised images, so that its
likelihood compares with the published binarised-MNIST numbers; ``--default-epochs`` keeps the
recipe's own epoch count), lets each run's own end-of-run evaluation compute the metrics on 10k
samples against the 10k test images, and prints one table per dataset: mean ± standard
deviation over the seeds of training seconds per epoch (from the logged throughput), domain FID,
classifier score, class coverage, precision, recall, and where the family has them the test
negative ELBO, IWAE bound (k=100), linear-probe and 1-nearest-neighbour accuracy. The last row
scores real training images the same way: the floor of the FID and the ceiling of the rest.
With ``--inception``, every run is also scored with the Inception metrics (FID, KID, and the
Inception Score where its softmax layer is cached) by ``vaegan-eval <run>
metrics=inception_fid,inception_kid,inception_score`` on the CPU too, its report kept as
``inception.json`` beside ``metrics.json`` (a run that has one is not scored again), and the real
images' row gets the same metrics against the same cached reference features.
Runs are kept in ``--out/<length>/<dataset>/<family>/seed=<seed>/`` (``<length>`` is ``3-epochs``
or ``default-epochs``); a run with a ``metrics.json`` is not trained again, so an interrupted
benchmark continues where it stopped. A finished run trained with other overrides than the ones
asked for (other extra overrides) stops the benchmark with both lists, rather than entering the
table under the wrong name.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_runs import read_job, summarize  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ["vae", "gan", "vaegan", "aae", "bigan"]
GREY = ("mnist", "fashion_mnist", "shapes")  # 1-channel datasets
# the VAE on binarised grey images, as the binarised-MNIST likelihood references; on colour images
# it keeps its 8-bit likelihood (bits per dimension)
EXTRA = {("vae", dataset): ["dataset.binarize=true"] for dataset in GREY}
FINAL_METRICS = (
    "eval.final_metrics=[domain_fid,classifier_score,class_coverage,precision_recall,"
    "diversity,neg_elbo,iwae,recon_mse,linear_probe,nearest_neighbour,label_accuracy]"
)


def train_overrides(family: str, dataset: str, seed: int, epochs: int | None, run_dir: Path, extra: list[str]) -> list:
    """The ``vaegan-train`` overrides of one run. The run directory is quoted: its ``seed=N``
    part would otherwise end the value for Hydra's override parser."""
    overrides = [
        f"model={family}",
        f"dataset={dataset}",
        f"seed={seed}",
        f"hydra.run.dir='{run_dir}'",
        "resume=auto",  # a run stopped after its last checkpoint (in its final evaluation) only evaluates
        "log.progress_bar=false",
        "eval.every_n_steps=1000000",
        "log.image_every_n_steps=1000000",
        "checkpoint.every_n_steps=1000000",
        FINAL_METRICS,
        *EXTRA.get((family, dataset), []),
        *extra,
    ]
    return overrides if epochs is None else [*overrides, f"trainer.max_epochs={epochs}"]


def absolute_path_variables(environ) -> None:
    """Make the runner's path variables absolute in ``environ``: each run starts in its own
    folder, where ``VAEGAN_DATA_DIR=../shared/data`` would point somewhere else."""
    for name in ("VAEGAN_DATA_DIR", "VAEGAN_CACHE_DIR"):
        if environ.get(name):
            environ[name] = str(Path(environ[name]).resolve())


def length_folder(epochs: int | None) -> str:
    """The folder of one training length, so 3-epoch and default-length runs never mix."""
    return "default-epochs" if epochs is None else f"{epochs}-epochs"


def task_overrides(overrides: list[str]) -> list[str]:
    """The overrides that say what a run trained, as it records them in ``.hydra/overrides.yaml``
    (Hydra keeps ``hydra.*`` apart; ``resume=`` says how it started, not what it trained)."""
    return [o for o in overrides if not o.startswith(("hydra.", "resume="))]


def check_finished_run(run_dir: Path, overrides: list[str]) -> None:
    """Refuse a finished run that was trained with other overrides than the ones asked for."""
    from omegaconf import OmegaConf

    recorded = run_dir / ".hydra" / "overrides.yaml"
    if not recorded.is_file():
        return
    was, asked = task_overrides(list(map(str, OmegaConf.load(recorded)))), task_overrides(overrides)
    if was != asked:
        raise SystemExit(
            f"{run_dir} holds a finished run with other overrides than this benchmark asks for:\n"
            f"  recorded: {' '.join(map(str, was))}\n  asked:    {' '.join(asked)}\n"
            "Give another --out, or delete that run folder to train it again."
        )


def train(family: str, dataset: str, seed: int, epochs: int | None, run_dir: Path, extra: list[str]) -> dict:
    """One run (or the finished one already in ``run_dir``); its metrics.json with timings."""
    overrides = train_overrides(family, dataset, seed, epochs, run_dir, extra)
    if (run_dir / "metrics.json").is_file():
        check_finished_run(run_dir, overrides)
    else:
        args = [sys.executable, "-m", "vaegan_runner.train", *overrides]
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        started = time.time()
        result = subprocess.run(args, cwd=run_dir.parent, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(
                f"{family} on {dataset}, seed {seed} failed ({result.returncode}):\n{result.stderr[-3000:]}"
            )
        print(f"{dataset} {family} seed {seed}: {time.time() - started:.0f} s", file=sys.stderr, flush=True)
    return read_job(run_dir, images_per_epoch(run_dir))


INCEPTION_METRICS = "metrics=inception_fid,inception_kid,inception_score"
INCEPTION_VALUES = ("inception_fid", "inception_kid", "inception_kid_std", "inception_score", "inception_score_std")


def inception_scored(run_dir: Path, run: dict) -> dict:
    """``run`` with the Inception metrics of its checkpoint (``inception.json``, written by
    ``vaegan-eval`` on the first call), under their ``final/`` names, and their stamps."""
    report_path = run_dir / "inception.json"
    if not report_path.is_file():
        args = [sys.executable, "-m", "vaegan_runner.cli.eval", str(run_dir), INCEPTION_METRICS, f"out={report_path}"]
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        result = subprocess.run(args, cwd=run_dir.parent, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"Inception metrics of {run_dir} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    report = json.loads(report_path.read_text())
    values = {f"final/{k}": v for k, v in report["metrics"].items() if k in INCEPTION_VALUES}
    return {**run, **values, "metric_counts": {**run.get("metric_counts", {}), **report["metric_counts"]}}


def images_per_epoch(run_dir: Path) -> int:
    """An epoch's images: the training split's size that the run recorded (so a run that
    ``trainer.max_steps`` ended inside an epoch still reports seconds per whole epoch); runs
    from before that was recorded ran whole epochs, so images seen / epochs."""
    saved = json.loads((run_dir / "metrics.json").read_text())
    if "train_images" in saved:
        return saved["train_images"]
    resolved = (run_dir / ".hydra" / "config.yaml").read_text()
    epochs = next(
        (line.split(":", 1)[1].strip() for line in resolved.splitlines() if line.strip().startswith("max_epochs:")),
        "null",
    )
    return saved["images_seen"] // int(epochs) if epochs not in ("null", "None") else saved["images_seen"]


def real_images_row(dataset: str, n: int, inception: bool = False) -> dict:
    """The metrics of ``n`` real training images against the held-out split: the floor the
    families' numbers should be read against (FID of real against real is not 0 at finite n);
    with ``inception``, their Inception FID and KID against ``eval.inception_reference``'s split
    as well (the runs' own reference features, from the same cache)."""
    import torch
    from omegaconf import OmegaConf

    from vaegan_runner.config.checks import typed
    from vaegan_runner.data import dataset_schema, load_data
    from vaegan_runner.metrics.classifier_score import class_coverage, classifier_score
    from vaegan_runner.metrics.fingerprints import unit_batches
    from vaegan_runner.metrics.frechet import FeatureStats, frechet_distance
    from vaegan_runner.metrics.precision_recall import precision_recall
    from vaegan_runner.metrics.resources import MetricResources
    from vaegan_runner.run_schema import EvalConfig

    node = OmegaConf.load(REPO / "configs" / "dataset" / f"{dataset}.yaml")
    data = load_data(typed(dataset_schema(dataset), node, "dataset"), torch.device("cpu"))
    eval_node = OmegaConf.load(REPO / "configs" / "eval" / "default.yaml")
    resources = MetricResources(data, typed(EvalConfig, eval_node, "eval"), torch.device("cpu"), print)
    classifier = resources.domain_classifier
    parts = [classifier.features_and_logits(images.float() / 255) for images, _ in unit_batches(data.train, 500, n)]
    features, logits = torch.cat([f for f, _ in parts]), torch.cat([lg for _, lg in parts])
    reference, stats = resources.domain_reference()
    precision, recall = precision_recall(reference[:n], features, k=3)
    extra = real_inception_values(resources, data, n) if inception else {}
    return {
        **extra,
        "seconds_per_epoch": None,
        "final/domain_fid": frechet_distance(FeatureStats.from_features(features), stats),
        "final/precision": precision,
        "final/recall": recall,
        "final/class_coverage": float(class_coverage(logits, 10)),
        "final/classifier_score": classifier_score(logits),
        "metric_counts": {"domain_fid": {"samples": n, "reference": stats.count}, **extra.pop("metric_counts", {})},
    }


def real_inception_values(resources, data, n: int) -> dict:
    """Inception FID and KID of ``n`` real training images against the reference split."""
    import torch

    from vaegan_runner.metrics.fingerprints import unit_batches
    from vaegan_runner.metrics.frechet import FeatureStats, frechet_distance
    from vaegan_runner.metrics.kid import KID_SUBSETS, kernel_distance

    batches = unit_batches(data.train, 500, n)
    real = torch.cat([resources.inception.features(images.float() / 255) for images, _ in batches])
    reference = resources.inception_reference_features()
    kid, kid_std, _ = kernel_distance(reference, real, subsets=KID_SUBSETS, seed=0)  # as _inception_kid
    protocol = resources.feature_protocol("inception")
    return {
        "final/inception_fid": frechet_distance(FeatureStats.from_features(real), resources.inception_reference()),
        "final/inception_kid": kid,
        "final/inception_kid_std": kid_std,
        "metric_counts": {"inception_fid": {**protocol, "samples": n, "reference": len(reference)}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--families",
        nargs="+",
        default=FAMILIES,
        help="the five built-in families by default; any family vaegan-train knows",
    )
    parser.add_argument("--datasets", nargs="+", default=["mnist"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=3)
    length.add_argument("--default-epochs", action="store_true", help="each recipe's own epoch count")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmark_quality"))
    parser.add_argument(
        "--real-images", type=int, default=10000, help="also score this many real training images (0: no such row)"
    )
    parser.add_argument(
        "--inception", action="store_true", help="also the Inception metrics of every run and of the real images"
    )
    parser.add_argument("overrides", nargs="*", help="extra vaegan-train overrides for every run")
    args = parser.parse_args()
    from vaegan_runner.models import family_names  # built-in and installed families (imports torch)

    if unknown := [name for name in args.families if name not in family_names()]:
        parser.error(f"--families: unknown family {', '.join(unknown)}; known: {', '.join(family_names())}")
    if not os.environ.get("VAEGAN_DATA_DIR"):
        print("note: VAEGAN_DATA_DIR is not set; the data is read from ./data or downloaded", file=sys.stderr)
    absolute_path_variables(os.environ)
    epochs = None if args.default_epochs else args.epochs
    out = args.out.resolve()
    command = " ".join(sys.argv[1:])
    for dataset in args.datasets:
        rows = {}
        for family in args.families:
            runs = []
            for seed in args.seeds:
                run_dir = out / length_folder(epochs) / dataset / family / f"seed={seed}"
                run_dir.parent.mkdir(parents=True, exist_ok=True)
                run = train(family, dataset, seed, epochs, run_dir, args.overrides)
                runs.append(inception_scored(run_dir, run) if args.inception else run)
            rows[family] = runs
        if args.real_images:
            rows["real training images"] = [real_images_row(dataset, args.real_images, args.inception)]
        print(f"\n### {dataset}: python scripts/benchmark_quality.py {command}\n")
        print(summarize(rows))
        print(f"\n{counts_line(rows)}")
    return 0


def counts_line(rows: dict[str, list[dict]]) -> str:
    """What the sample metrics were computed on, over every run of the table (FID depends on it)."""
    seen: dict[str, set] = {}
    for runs in rows.values():
        for run in runs:
            for metric in ("domain_fid", "inception_fid", "precision_recall", "iwae", "linear_probe"):
                counts = run.get("metric_counts", {}).get(metric)
                if counts:
                    keys = ("samples", "reference", "images", "k", "train", "test")
                    seen.setdefault(metric, set()).add(", ".join(f"{k} {counts[k]}" for k in keys if k in counts))
    return "; ".join(f"{metric}: {' | '.join(sorted(values))}" for metric, values in seen.items())


if __name__ == "__main__":
    sys.exit(main())
