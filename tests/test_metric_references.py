"""The runner's metric math against the reference implementations, on the same features:
pytorch-fid's ``calculate_frechet_distance`` (the TTUR port), torch-fidelity's KID
(``kernel_mmd`` with its polynomial kernel), its Inception Score (``isc``: shuffle, splits, mean
and std) and its precision/recall (``prc``, a port of Kynkäänniemi et al.'s code), plus KID's
own known answers. Both references are test-only
dependencies (the test extra); each comparison skips cleanly where one is not installed."""

import pytest
import torch

from vaegan_runner.metrics.frechet import FeatureStats, frechet_distance
from vaegan_runner.metrics.inception_score import inception_score
from vaegan_runner.metrics.kid import kernel_distance, mmd2_unbiased
from vaegan_runner.metrics.precision_recall import precision_recall


def features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """``n`` draws of one correlated Gaussian in ``d`` dimensions (like real features), moved
    by ``shift`` and scaled by ``scale``; ``seed`` picks the draws, not the distribution."""
    mixing = torch.randn(d, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64) / d**0.5
    draws = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return draws @ mixing * scale + shift


@pytest.mark.parametrize("n,d,shift,scale", [(2000, 64, 0.3, 1.2), (500, 128, 0.0, 0.8), (300, 256, 1.0, 1.0)])
def test_fid_agrees_with_pytorch_fid(n, d, shift, scale):
    pytorch_fid = pytest.importorskip("pytorch_fid.fid_score")
    real, fake = features(n, d, 1), features(n, d, 2, shift, scale)
    a, b = FeatureStats.from_features(real), FeatureStats.from_features(fake)
    theirs = pytorch_fid.calculate_frechet_distance(a.mean.numpy(), a.cov.numpy(), b.mean.numpy(), b.cov.numpy())
    assert frechet_distance(a, b) == pytest.approx(float(theirs), rel=1e-6)


@pytest.mark.parametrize("m,d,shift", [(200, 16, 0.0), (500, 64, 0.2), (1000, 2048, 0.05)])
def test_kid_subset_estimate_agrees_with_torch_fidelity(m, d, shift):
    metric_kid = pytest.importorskip("torch_fidelity.metric_kid")
    real, fake = features(m, d, 3), features(m, d, 4, shift)
    theirs = metric_kid.kernel_mmd(
        real.numpy(), fake.numpy(), kid_kernel="poly", kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
    )  # fmt: skip
    assert mmd2_unbiased(real, fake) == pytest.approx(float(theirs), rel=1e-6)


def test_kid_mean_and_std_agree_with_torch_fidelity_on_the_same_subsets():
    """torch-fidelity draws its subsets with numpy; given the subsets, mean and std (ddof 0) agree."""
    metric_kid = pytest.importorskip("torch_fidelity.metric_kid")
    real, fake = features(600, 32, 5), features(600, 32, 6, 0.1)
    ours = [mmd2_unbiased(real[i::3], fake[i::3]) for i in range(3)]
    theirs = [
        float(metric_kid.kernel_mmd(real[i::3].numpy(), fake[i::3].numpy(), kid_kernel="poly",
                                    kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1))
        for i in range(3)
    ]  # fmt: skip
    assert torch.tensor(ours).mean().item() == pytest.approx(torch.tensor(theirs).mean().item(), rel=1e-6)
    assert torch.tensor(ours).std(unbiased=False).item() == pytest.approx(
        torch.tensor(theirs).std(unbiased=False).item(), rel=1e-6
    )


def test_kid_of_two_samples_of_one_distribution_is_near_zero_and_unbiased():
    """The estimate is unbiased: over many pairs of independent samples of one Gaussian its mean
    is 0 to within its standard error, where a biased estimate would stay above 0."""
    values = [mmd2_unbiased(features(100, 8, 2 * i), features(100, 8, 2 * i + 1)) for i in range(100)]
    mean, std = torch.tensor(values).mean(), torch.tensor(values).std()
    assert abs(mean) < 3 * std / len(values) ** 0.5


def test_kid_grows_with_the_distance_between_the_sets():
    real = features(300, 16, 7)
    values = [kernel_distance(real, features(300, 16, 8, shift), subsets=10)[0] for shift in (0.0, 0.2, 0.5, 1.0)]
    assert values == sorted(values) and values[-1] > 10 * abs(values[0])


def test_kid_subsets_shrink_to_the_smaller_set_and_are_seeded():
    real, fake = features(300, 8, 9), features(50, 8, 10)
    mean, std, size = kernel_distance(real, fake, subsets=20, seed=3)
    assert size == 50 and std > 0
    assert kernel_distance(real, fake, subsets=20, seed=3) == (mean, std, size)
    assert kernel_distance(real, fake, subsets=20, seed=4)[0] != mean


@pytest.mark.parametrize("n,classes,scale", [(10000, 1008, 4.0), (1000, 1008, 1.0), (237, 10, 3.0)])
def test_inception_score_agrees_with_torch_fidelity_on_the_same_logits(n, classes, scale):
    """The same logits through torch-fidelity's ``isc`` (its defaults: 10 splits, rows shuffled
    by RandomState(2020)) and ours: mean and std to 1e-6, for a count that splits unevenly too."""
    metric_isc = pytest.importorskip("torch_fidelity.metric_isc")
    logits = features(n, classes, 14, scale=scale).float()
    theirs = metric_isc.isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    mean, std = inception_score(logits)
    assert mean == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert std == pytest.approx(theirs["inception_score_std"], rel=1e-6)
    assert 1.5 < mean < classes  # an informative case, neither collapsed nor saturated


def test_precision_recall_agrees_with_the_kynkaanniemi_port_in_torch_fidelity():
    metric_prc = pytest.importorskip("torch_fidelity.metric_prc")
    real = features(400, 32, 11).float()
    fake = torch.cat([features(300, 32, 12, 0.3).float(), features(100, 32, 13, 3.0).float()])
    precision, recall = precision_recall(real, fake, k=3)
    theirs = metric_prc.calculate_precision_recall_full(fake, real, neighborhood=3, batch_size=10000)
    assert (precision, recall) == pytest.approx(theirs, abs=1e-6)
    assert 0.1 < precision < 0.95 and 0.1 < recall < 1.0  # a case where both are informative
