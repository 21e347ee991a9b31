#!/usr/bin/env python
"""How fast the FID Inception network runs on this CPU, against what the CPU could do.

    flock /tmp/vaegan-bench.lock python scripts/benchmark_inception.py
    flock /tmp/vaegan-bench.lock python scripts/benchmark_inception.py --sections rates \
        --variants folded-cl --batches 16 32 64 128 --threads 1 2
    VAEGAN_DATA_DIR=../shared/data python scripts/benchmark_inception.py --sections parity --images 10000
    VAEGAN_DATA_DIR=../shared/data python scripts/benchmark_inception.py --sections parity --images 2000 \
        --variants script-cl bf16-cl --fakes outputs/bench/cifar10-plain/seed=0/samples.npz

Sections (``--sections``, default ``machine flops rates``):

* ``machine``: the load average, the processor, and the fp32 and bf16 matmul rates (GFLOP/s)
  of ``torch.mm`` on square matrices of ``--matmul-size`` at 1 and 2 threads (best of 5 after a
  warm-up): the most this CPU does per second in the operation convolutions reduce to.
* ``flops``: floating-point operations of one 299x299 image through the network up to pool3,
  counted twice: by ``torch.utils.flop_counter.FlopCounterMode`` on the TorchScript model as
  shipped, and from the weight shapes and output sizes of every convolution (2 x multiply-adds).
* ``rates``: images/s of ``InceptionFeatures.features`` (resize and all) for each variant,
  batch size and thread count, after warm-up calls (two for TorchScript, one otherwise), over at
  least ``--images`` images, and
  that rate as a fraction of the ceiling (matmul rate at that thread count and the variant's
  precision / FLOPs per image).
  Variants: ``script`` (the TorchScript graph as shipped, NCHW input), ``script-cl`` (its input
  channels-last: the previous default), ``folded`` (batch norms folded, NCHW), ``folded-cl``
  (folded, channels-last throughout: ``eval.inception_precision=fp32``), ``frozen-cl`` (``folded-cl`` scripted, then
  ``torch.jit.freeze`` and ``optimize_for_inference``, oneDNN's prepacked and fused
  convolutions), ``autocast-bf16-cl`` (``folded-cl`` under CPU bf16 autocast), ``bf16-cl``
  (``eval.inception_precision=bf16``, ``auto``'s choice on a CPU with native bfloat16:
  ``folded-cl`` with bf16 weights and activations, the preprocessing in fp32).
* ``parity``: the FID of ``--images`` real images against another ``--images`` with the graph as
  shipped (``script-cl``) and with each ``--variants`` candidate, on the same images, and the
  largest feature difference. A variant may be the default only if its FID differs by <= 0.1.
  With ``--fakes samples.npz`` (``vaegan-sample ... format=npz``, or ``plain_dcgan.py``'s
  samples), the second half is that file's first ``--images`` images instead: the FID of
  generated images, where a model's numbers are.
  The images: the first of each class of the CIFAR-10 JPEG tar's training split
  (``$VAEGAN_DATA_DIR/CIFAR-10-jpeg/cifar10-jpeg.tar.gz``, decoded in memory), else MNIST's
  training images (``$VAEGAN_DATA_DIR/MNIST/raw``).

Thread counts are set for each measurement and put back afterwards. The machine is shared: run
it under ``flock /tmp/vaegan-bench.lock`` and read the load averages it prints with each table.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import os
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vaegan_runner.metrics.frechet import FeatureStats, frechet_distance  # noqa: E402
from vaegan_runner.metrics.inception import INPUT_SIZE, FoldedInception, InceptionFeatures  # noqa: E402

VARIANTS = ("script", "script-cl", "folded", "folded-cl", "frozen-cl", "autocast-bf16-cl", "bf16-cl")
BF16 = ("autocast-bf16-cl", "bf16-cl")  # variants whose ceiling is the bf16 matmul rate
REFERENCE = "script-cl"
TORCHSCRIPT = ("script", "script-cl", "frozen-cl")  # run by the profiling executor: two warm-up calls


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown processor"


def matmul_rate(n: int, thread_count: int, dtype: torch.dtype = torch.float32, repeats: int = 5) -> float:
    """Best GFLOP/s of a [n, n] x [n, n] product (2 n^3 operations) in ``dtype`` at ``thread_count``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = 0.0
    with threads(thread_count):
        torch.mm(a, b)
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def counted_flops(extractor: InceptionFeatures) -> float:
    """FLOPs of one image through the TorchScript model, by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        extractor.model(x)
    return float(counter.get_total_flops())


def shape_flops(extractor: InceptionFeatures) -> float:
    """2 x multiply-adds of every convolution of one image, from its weight shape and output size."""
    total = 0.0

    def count(conv, _inputs, output):
        nonlocal total
        out_channels, in_channels, kh, kw = conv.weight.shape
        total += 2.0 * output.shape[2] * output.shape[3] * out_channels * in_channels * kh * kw

    convs = [m for m in extractor.network.modules() if isinstance(m, torch.nn.Conv2d)]
    handles = [conv.register_forward_hook(count) for conv in convs]
    try:
        with torch.inference_mode():
            extractor.network(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
    finally:
        for handle in handles:
            handle.remove()
    return total


def variant_network(extractor: InceptionFeatures, folded_cl: torch.nn.Module, name: str) -> Callable:
    """The callable ``InceptionFeatures.features`` runs for variant ``name`` (its input arrives
    channels-last)."""
    model = extractor.model
    if name == "script":
        return lambda x: model(x.contiguous())
    if name == "script-cl":
        return model
    if name == "folded":
        folded = FoldedInception(model).eval()
        return lambda x: folded(x.contiguous())
    if name == "folded-cl":
        return folded_cl
    if name == "frozen-cl":
        return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(FoldedInception(model).eval())))
    if name == "autocast-bf16-cl":

        def autocast_bf16(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return folded_cl(x).float()

        return autocast_bf16
    if name == "bf16-cl":  # what InceptionFeatures(precision="bf16").features runs
        bf16_network = copy.deepcopy(folded_cl).to(torch.bfloat16)
        return lambda x: bf16_network(x.to(torch.bfloat16)).float()
    raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")


def images_per_second(extractor: InceptionFeatures, batch: int, at_least: int, warmups: int) -> float:
    """Rate of ``features`` on random 32x32 RGB images, ``batch`` per call, after ``warmups``
    calls (TorchScript's profiling executor optimises a graph on its second call)."""
    images = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    extractor.batch_size = batch
    for _ in range(warmups):
        extractor.features(images)
    calls = max(1, -(-at_least // batch))
    started = time.perf_counter()
    for _ in range(calls):
        extractor.features(images)
    return calls * batch / (time.perf_counter() - started)


def section_rates(args, extractor: InceptionFeatures, flops: float, matmul: dict[tuple[int, str], float]) -> None:
    folded_cl = extractor.network
    print(f"\n### images/s of InceptionFeatures.features ({load()} at the start)\n")
    print("| variant | threads | batch | images/s | ceiling images/s | fraction of ceiling |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.variants:
        extractor.network = variant_network(extractor, folded_cl, name)
        for thread_count in args.threads:
            ceiling = matmul[thread_count, "bf16" if name in BF16 else "fp32"] * 1e9 / flops
            for batch in args.batches:
                with threads(thread_count):
                    rate = images_per_second(extractor, batch, args.images, 2 if name in TORCHSCRIPT else 1)
                print(
                    f"| {name} | {thread_count} | {batch} | {rate:.2f} | {ceiling:.2f} | {rate / ceiling:.0%} |",
                    flush=True,
                )
    extractor.network = folded_cl
    print(f"\n({load()} at the end)")


def cifar_jpegs(path: Path, per_class: int) -> torch.Tensor:
    """The first ``per_class`` training images of each class of the CIFAR-10 JPEG tar, uint8
    [10 * per_class, 3, 32, 32], in class order, decoded in memory."""
    from PIL import Image

    taken: dict[str, list[np.ndarray]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 3 or parts[0] != "train" or not member.isfile():
                continue
            images = taken.setdefault(parts[1], [])
            if len(images) < per_class:
                data = tar.extractfile(member).read()
                images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    stacked = np.stack([image for name in sorted(taken) for image in taken[name]])
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


def mnist_images(root: Path, n: int) -> torch.Tensor:
    with gzip.open(root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz", "rb") as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return torch.from_numpy(pixels[:n].copy())


def real_images(n: int) -> tuple[torch.Tensor, str]:
    """2 n real images (uint8) and what they are."""
    root = Path(os.environ.get("VAEGAN_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    tar = root / "CIFAR-10-jpeg" / "cifar10-jpeg.tar.gz"
    if tar.is_file():
        per_class = -(-2 * n // 10)
        images = cifar_jpegs(tar, per_class)
        # Interleave the classes so that both halves hold every class equally.
        order = torch.arange(images.shape[0]).reshape(10, per_class).T.reshape(-1)
        return images[order][: 2 * n], f"CIFAR-10 JPEG training images ({tar})"
    if (root / "MNIST" / "raw").is_dir():
        return mnist_images(root, 2 * n), f"MNIST training images ({root / 'MNIST' / 'raw'})"
    raise SystemExit(f"no real images under {root}: set VAEGAN_DATA_DIR to a folder with CIFAR-10-jpeg/ or MNIST/raw/")


def section_parity(args, extractor: InceptionFeatures) -> None:
    images, what = real_images(args.images)
    n = images.shape[0] // 2
    if args.fakes is not None:
        from vaegan_runner.metrics.given_samples import load_samples

        fakes = load_samples(args.fakes, images.shape[1], images.shape[2])[:n]
        if len(fakes) < n:
            raise SystemExit(f"--fakes {args.fakes} holds {len(fakes)} images, fewer than --images {n}")
        images, what = torch.cat([images[:n], fakes]), f"{what} against {n} images of {args.fakes}"
    folded_cl = extractor.network
    extractor.batch_size = max(args.batches)
    against = "generated" if args.fakes is not None else "other real"
    print(f"\n### FID of {n} real images against {n} {against} ones, per variant ({what}; {load()} at the start)\n")
    print("| variant | FID | difference from script-cl | largest feature difference | seconds |")
    print("|---|---:|---:|---:|---:|")
    reference = None
    for name in [REFERENCE, *[v for v in args.variants if v != REFERENCE]]:
        extractor.network = variant_network(extractor, folded_cl, name)
        started = time.perf_counter()
        features = torch.cat([extractor.features(part.float() / 255) for part in images.split(500)])
        seconds = time.perf_counter() - started
        fid = frechet_distance(FeatureStats.from_features(features[:n]), FeatureStats.from_features(features[n:]))
        if reference is None:
            reference = fid, features
        diff = float((features - reference[1]).abs().max())
        print(f"| {name} | {fid:.4f} | {fid - reference[0]:+.4f} | {diff:.2e} | {seconds:.0f} |", flush=True)
    extractor.network = folded_cl
    print(f"\n({load()} at the end)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["machine", "flops", "rates"])
    parser.add_argument("--variants", nargs="+", default=["script-cl", "folded-cl"], choices=VARIANTS)
    parser.add_argument("--batches", nargs="+", type=int, default=[32])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--images", type=int, default=128, help="rates: images per point; parity: per side")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--fakes", type=Path, default=None, help="parity: generated images (.npz) as the second set")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each table row as it is measured, also into a file
    extractor = InceptionFeatures("cpu")
    print(f"torch {torch.__version__}, {processor()}, {torch.backends.cpu.get_cpu_capability()}; {load()}")
    flops = counted = None
    matmul = {}
    if "machine" in args.sections or "rates" in args.sections:
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
        for t in sorted({1, 2, *args.threads}):
            for name, dtype in dtypes.items():
                matmul[t, name] = matmul_rate(args.matmul_size, t, dtype)
        print(f"\n### matmul ({args.matmul_size}x{args.matmul_size}, best of 5; {load()})\n")
        print("| threads | fp32 GFLOP/s | bf16 GFLOP/s |\n|---:|---:|---:|")
        for t in sorted({t for t, _ in matmul}):
            print(f"| {t} | {matmul[t, 'fp32']:.1f} | {matmul[t, 'bf16']:.1f} |")
    if "flops" in args.sections or "rates" in args.sections:
        counted, flops = counted_flops(extractor), shape_flops(extractor)
        print("\n### FLOPs per 299x299 image (up to pool3)\n")
        print(f"FlopCounterMode on the TorchScript model: {counted / 1e9:.3f} GFLOP")
        print(f"2 x multiply-adds from the convolutions' weight shapes and output sizes: {flops / 1e9:.3f} GFLOP")
    if "rates" in args.sections:
        section_rates(args, extractor, flops, matmul)
    if "parity" in args.sections:
        section_parity(args, extractor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
