"""The WAE-MMD family (``vaegan_runner/models/wae.py``): its kernel estimate, and one training
step that pulls the codes onto the prior while the reconstruction improves."""

from __future__ import annotations

import pytest
import torch

from vaegan_runner.models.wae import imq_mmd, squared_distances

SCALES = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]


def test_squared_distances_match_cdist():
    a, b = torch.randn(5, 3), torch.randn(7, 3)
    assert torch.allclose(squared_distances(a, b), torch.cdist(a, b).pow(2), atol=1e-5)


def test_the_estimate_is_unbiased_for_equal_distributions_and_grows_with_the_gap():
    g = torch.Generator().manual_seed(0)
    same = [imq_mmd(torch.randn(128, 8, generator=g), torch.randn(128, 8, generator=g), SCALES) for _ in range(20)]
    assert abs(torch.stack(same).mean().item()) < 0.01  # unbiased: the mean over draws is near 0
    prior = torch.randn(128, 8, generator=g)
    shifted = imq_mmd(torch.randn(128, 8, generator=g) + 0.5, prior, SCALES).item()
    shrunk = imq_mmd(torch.randn(128, 8, generator=g) * 0.3, prior, SCALES).item()
    assert shifted > 0.1 and shrunk > shifted  # a collapsed code is further from N(0, I) than a shifted one


def test_equal_codes_have_a_finite_gradient_and_one_code_no_penalty():
    codes = torch.zeros(16, 8, requires_grad=True)  # every pair at distance 0
    imq_mmd(codes, torch.randn(16, 8), SCALES).backward()
    assert codes.grad is not None and torch.isfinite(codes.grad).all()
    assert imq_mmd(torch.randn(1, 8), torch.randn(1, 8), SCALES).item() == 0.0


def test_training_pulls_the_codes_onto_the_prior(build_family, phase_runner):
    run, family = build_family("wae")
    runner = phase_runner(run, family)
    torch.manual_seed(1)
    x = torch.rand(64, family.channels, family.image_size, family.image_size)
    first = family.evaluate(x, torch.zeros(64, dtype=torch.long))
    for step in range(60):
        runner.run(family.phases[0], x, torch.zeros(64, dtype=torch.long), step)
        runner.end_step()
    family.train()
    last = family.evaluate(x, torch.zeros(64, dtype=torch.long))
    assert last["mmd"] < 0.5 * first["mmd"], (first, last)
    assert last["recon"] < first["recon"], (first, last)


def test_the_per_class_penalty_is_each_class_estimate_weighted_by_its_count():
    """``labels`` gives in one pass what a loop over the classes gives; a class of one adds 0."""
    g = torch.Generator().manual_seed(3)
    codes, prior = torch.randn(40, 4, generator=g), torch.randn(40, 4, generator=g)
    labels = torch.tensor([0] * 17 + [1] * 12 + [2] * 10 + [3])

    def reference(a, b):  # the formula of the module's docstring, written out pair by pair
        n, d = a.shape
        if n < 2:
            return 0.0
        total = 0.0
        for s in SCALES:
            c = s * 2.0 * d
            k = lambda u, v, c=c: c / (c + float(((u - v) ** 2).sum()))  # noqa: E731
            same = sum(k(a[i], a[j]) + k(b[i], b[j]) for i in range(n) for j in range(n) if i != j)
            total += same / (n * (n - 1)) - 2 * sum(k(a[i], b[j]) for i in range(n) for j in range(n)) / n**2
        return total

    expected = sum(int((labels == c).sum()) * reference(codes[labels == c], prior[labels == c]) for c in range(4))
    expected /= len(labels)
    assert imq_mmd(codes, prior, SCALES, labels).item() == pytest.approx(expected, rel=1e-5)
    assert imq_mmd(codes, prior, SCALES, torch.zeros(40, dtype=torch.long)).item() == pytest.approx(
        imq_mmd(codes, prior, SCALES).item()
    )
