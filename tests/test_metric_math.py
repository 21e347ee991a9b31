"""Known-answer tests of the metric math: Fréchet distance, precision/recall, classifier score, probe."""

import math

import pytest
import torch

from vaegan_runner.metrics.classifier_score import class_coverage, class_histogram, classifier_score
from vaegan_runner.metrics.frechet import FeatureAccumulator, FeatureStats, frechet_distance
from vaegan_runner.metrics.precision_recall import precision_recall
from vaegan_runner.metrics.probe import linear_probe_accuracy


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_rotation(dim: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen(seed), dtype=torch.float64))
    return q


# ----------------------------------------------------------------------------- Fréchet distance
def test_fd_of_a_set_with_itself_is_zero():
    stats = FeatureStats.from_features(torch.randn(500, 8, generator=gen()))
    assert abs(frechet_distance(stats, stats)) < 1e-9


def test_fd_of_diagonal_gaussians_matches_closed_form_also_after_a_common_rotation():
    d = 6
    mean_a = torch.randn(d, generator=gen(1), dtype=torch.float64)
    mean_b = torch.randn(d, generator=gen(2), dtype=torch.float64)
    var_a = torch.rand(d, generator=gen(3), dtype=torch.float64) + 0.1
    var_b = torch.rand(d, generator=gen(4), dtype=torch.float64) + 0.1
    trace_sqrt = (var_a * var_b).sqrt().sum()  # diagonal: sqrt of the product is elementwise
    expected = float((mean_a - mean_b).square().sum() + var_a.sum() + var_b.sum() - 2 * trace_sqrt)

    a, b = FeatureStats(mean_a, torch.diag(var_a), 2), FeatureStats(mean_b, torch.diag(var_b), 2)
    diagonal = frechet_distance(a, b)
    assert diagonal == pytest.approx(expected, rel=1e-12)

    # The distance is invariant under a rotation applied to both Gaussians.
    q = random_rotation(d, seed=5)
    rotated = frechet_distance(
        FeatureStats(q @ mean_a, q @ a.cov @ q.T, 2), FeatureStats(q @ mean_b, q @ b.cov @ q.T, 2)
    )
    assert rotated == pytest.approx(expected, rel=1e-10)


def test_fd_of_non_commuting_covariances_matches_eigenvalues_of_the_product():
    d = 5
    x = torch.randn(d, d, generator=gen(6), dtype=torch.float64)
    y = torch.randn(d, d, generator=gen(7), dtype=torch.float64)
    cov_a, cov_b = x @ x.T + 0.1 * torch.eye(d), y @ y.T + 0.1 * torch.eye(d)
    mean = torch.zeros(d, dtype=torch.float64)
    # Independent route: S_a S_b has real positive eigenvalues; tr sqrt = sum of their square roots.
    trace_sqrt = torch.linalg.eigvals(cov_a @ cov_b).real.sqrt().sum()
    expected = float(cov_a.trace() + cov_b.trace() - 2 * trace_sqrt)
    measured = frechet_distance(FeatureStats(mean, cov_a, 2), FeatureStats(mean, cov_b, 2))
    assert measured == pytest.approx(expected, rel=1e-10)


def test_fd_from_large_samples_approaches_the_closed_form():
    n, d = 200_000, 3
    std_a, std_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.5, 0.5, 0.5])
    shift = torch.tensor([1.0, 0.0, -1.0])
    a = torch.randn(n, d, generator=gen(8)) * std_a
    b = torch.randn(n, d, generator=gen(9)) * std_b + shift
    expected = float(shift.square().sum() + (std_a - std_b).square().sum())  # diagonal: sum (s_a - s_b)^2
    measured = frechet_distance(FeatureStats.from_features(a), FeatureStats.from_features(b))
    assert measured == pytest.approx(expected, abs=0.03)


def test_fd_is_symmetric():
    a = FeatureStats.from_features(torch.randn(300, 10, generator=gen(10)))
    b = FeatureStats.from_features(torch.randn(300, 10, generator=gen(11)) * 2 + 1)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-10)


def test_fd_with_singular_covariances_is_finite():
    a = FeatureStats.from_features(torch.randn(5, 50, generator=gen(12)))  # rank 4 in 50 dimensions
    b = FeatureStats.from_features(torch.randn(7, 50, generator=gen(13)) + 0.5)
    assert math.isfinite(frechet_distance(a, b)) and frechet_distance(a, b) > 0
    assert abs(frechet_distance(a, a)) < 1e-6 * float(a.cov.trace())


def test_accumulator_equals_from_features_even_far_from_the_origin():
    feats = torch.randn(1000, 16, generator=gen(14), dtype=torch.float64) + 1e6
    accumulator = FeatureAccumulator()
    for batch in feats.split([1, 300, 99, 600]):
        accumulator.add(batch)
    streamed, direct = accumulator.stats(), FeatureStats.from_features(feats)
    assert streamed.count == direct.count == 1000
    torch.testing.assert_close(streamed.mean, direct.mean, rtol=0, atol=1e-9)
    torch.testing.assert_close(streamed.cov, direct.cov, rtol=0, atol=1e-9)


def test_from_features_uses_the_unbiased_covariance():
    stats = FeatureStats.from_features(torch.tensor([[0.0], [2.0]]))
    assert stats.mean.item() == 1.0 and stats.cov.item() == 2.0  # ((-1)^2 + 1^2) / (2 - 1)


def test_feature_stats_round_trip_through_torch_save_with_weights_only(tmp_path):
    stats = FeatureStats.from_features(torch.randn(20, 4, generator=gen(15)))
    torch.save(stats.to_dict(), tmp_path / "stats.pt")
    loaded = FeatureStats.from_dict(torch.load(tmp_path / "stats.pt", weights_only=True))
    assert loaded.count == 20 and loaded.mean.dtype == torch.float64
    torch.testing.assert_close(loaded.mean, stats.mean, rtol=0, atol=0)
    torch.testing.assert_close(loaded.cov, stats.cov, rtol=0, atol=0)


# ----------------------------------------------------------------------------- precision / recall
def test_precision_recall_of_identical_sets_is_one():
    feats = torch.randn(200, 5, generator=gen(16))
    assert precision_recall(feats, feats.clone(), k=3, chunk=64) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero():
    real = torch.randn(100, 5, generator=gen(17))
    fake = torch.randn(100, 5, generator=gen(18)) + 100
    assert precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_fake_set_covering_half_the_modes_has_full_precision_and_half_recall():
    centres = torch.tensor([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0], [50.0, 50.0]])  # four separate modes
    real = torch.cat([c + torch.randn(500, 2, generator=gen(19 + i)) for i, c in enumerate(centres)])
    fake = torch.cat([c + torch.randn(500, 2, generator=gen(30 + i)) for i, c in enumerate(centres[:2])])
    precision, recall = precision_recall(real, fake, k=3, chunk=257)
    # Not exactly 1 and 0.5: a few fresh samples in a mode's tails fall outside every k-NN sphere.
    assert precision > 0.95
    assert 0.45 < recall <= 0.5


def test_precision_recall_does_not_depend_on_the_chunk_size():
    real = torch.randn(150, 4, generator=gen(40))
    fake = torch.randn(130, 4, generator=gen(41)) * 1.5
    assert precision_recall(real, fake, k=5, chunk=7) == precision_recall(real, fake, k=5, chunk=1000)


# ----------------------------------------------------------------------------- classifier score
def test_classifier_score_of_confident_predictions_spread_over_c_classes_is_c():
    c = 10
    logits = 60.0 * torch.nn.functional.one_hot(torch.arange(500) % c, c).float()
    assert classifier_score(logits) == pytest.approx(c, rel=1e-9)


def test_classifier_score_of_identical_predictions_is_one():
    logits = torch.randn(1, 10, generator=gen(42)).expand(300, -1)
    assert classifier_score(logits) == pytest.approx(1.0, abs=1e-12)


def test_class_histogram_gives_argmax_shares():
    logits = torch.nn.functional.one_hot(torch.tensor([0, 0, 2, 3]), 5).float()
    expected = torch.tensor([0.5, 0, 0.25, 0.25, 0], dtype=torch.float64)
    torch.testing.assert_close(class_histogram(logits, 5), expected)


def test_class_coverage_counts_collapse_that_stray_samples_would_hide():
    strays = torch.arange(1, 10).repeat(10)  # 10 stray samples in each of classes 1..9 (share 0.01)
    collapsed = torch.cat([torch.zeros(910, dtype=torch.long), strays])
    logits = torch.nn.functional.one_hot(collapsed, 10).float()
    assert int((class_histogram(logits, 10) > 0).sum()) == 10  # "any sample at all" sees every class
    assert class_coverage(logits, 10) == 1

    balanced = torch.nn.functional.one_hot(torch.arange(1000) % 10, 10).float()
    assert class_coverage(balanced, 10) == 10


def test_class_coverage_threshold_is_inclusive():
    labels = torch.cat([torch.zeros(975, dtype=torch.long), torch.ones(25, dtype=torch.long)])  # share 0.025
    assert class_coverage(torch.nn.functional.one_hot(labels, 10).float(), 10, min_share=0.25) == 2


# ----------------------------------------------------------------------------- linear probe
def separable_codes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    centres = 5 * torch.randn(10, 16, generator=gen(100))
    labels = torch.arange(n) % 10
    return centres[labels] + 0.1 * torch.randn(n, 16, generator=gen(seed)), labels


def test_probe_on_linearly_separable_codes_is_near_perfect():
    train, train_labels = separable_codes(2000, seed=101)
    test, test_labels = separable_codes(1000, seed=102)
    assert linear_probe_accuracy(train, train_labels, test, test_labels, num_classes=10) > 0.99


def test_probe_on_random_labels_is_at_chance_and_deterministic():
    codes = torch.randn(4000, 16, generator=gen(103))
    labels = torch.randint(0, 10, (4000,), generator=gen(104))
    args = (codes[:2000], labels[:2000], codes[2000:], labels[2000:])
    accuracy = linear_probe_accuracy(*args, num_classes=10)
    assert abs(accuracy - 0.1) < 0.04
    assert linear_probe_accuracy(*args, num_classes=10) == accuracy


# ----------------------------------------------------------------------------- protocol stamp
def test_the_weights_digest_names_exactly_one_set_of_weights():
    from vaegan_runner.metrics.fingerprints import module_digest

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    digest = module_digest(net)
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 12
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    twin.load_state_dict(net.state_dict())
    assert module_digest(twin) == digest
    with torch.no_grad():
        twin[0].weight[0, 0] += 1e-6
    assert module_digest(twin) != digest
    twin.load_state_dict(net.state_dict())
    twin[1].running_mean += 1  # buffers count: they change the features too
    assert module_digest(twin) != digest
