"""Does a conditional run's code hold the class? Decode held-out codes with another label.

    python scripts/label_transfer.py <run dir> [--images 2000] [--seed 0]

For a class-conditional family with an encoder (VAE, VAE-GAN, AAE), encodes held-out images,
decodes each code with its own label and with another label drawn at random, and prints the
share of each set that the dataset's domain classifier assigns to the label it was decoded
with. A code that holds only style follows the new label (transfer near the own-label value); a
code that still holds the class pulls the image back to its own class (transfer well below).
docs/results.md#the-aaes-code-discriminator quotes it for the AAE's code discriminator.
"""

from __future__ import annotations

import argparse

import torch

from vaegan_runner.cli.saved_run import load_saved_run
from vaegan_runner.data.pixels import to_pixels, to_unit
from vaegan_runner.metrics.fingerprints import unit_batches
from vaegan_runner.metrics.resources import MetricResources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory or checkpoint of a conditional run")
    parser.add_argument("--images", type=int, default=2000, help="held-out images to encode")
    parser.add_argument("--seed", type=int, default=0, help="seed of the other labels")
    args = parser.parse_args()

    saved = load_saved_run(args.run, [], "cpu")
    family = saved.family.eval()
    if not family.conditional or not hasattr(family, "encode"):
        raise SystemExit(f"{args.run}: not a class-conditional run of a family with an encoder")
    classifier = MetricResources(saved.data, saved.run.eval, torch.device("cpu"), print).domain_classifier
    k = family.num_classes
    generator = torch.Generator().manual_seed(args.seed)

    def obeyed(images: torch.Tensor, labels: torch.Tensor) -> int:
        return int((classifier.logits(to_unit(images, family.pixel_range)).argmax(dim=1) == labels).sum())

    own = transferred = seen = 0
    with torch.no_grad():
        for images, labels in unit_batches(saved.data.test, 500, args.images):
            x = to_pixels(images, family.pixel_range)
            codes = family.encode(x, labels)
            other = (labels + torch.randint(1, k, labels.shape, generator=generator)) % k
            own += obeyed(family.generate(codes, labels), labels)
            transferred += obeyed(family.generate(codes, other), other)
            seen += x.shape[0]
    print(
        f"{args.run}: {seen} held-out codes decoded with their own label: {own / seen:.3f} obeyed; "
        f"with another label: {transferred / seen:.3f}"
    )


if __name__ == "__main__":
    main()
