"""Known answers for the VAE's likelihood bounds (Burda et al. 2016): the importance weights
average to the ELBO, and the IWAE bound tightens as k grows."""

from __future__ import annotations

import math

import pytest
import torch

from runner_utils import FAST, compose_config
from vaegan_runner.data import load_data
from vaegan_runner.data.pixels import to_pixels
from vaegan_runner.models.vae import VAE
from vaegan_runner.run_schema import validate


@pytest.fixture(scope="module")
def vae_and_images():
    """A small MLP VAE after 40 Adam steps: an informative encoder, so the bounds differ."""
    run = validate(
        compose_config(
            [
                "model=vae",
                *FAST,
                "trainer.max_steps=1",
                "model.net.arch=mlp",
                "model.net.hidden=[128]",
                "model.latent_dim=8",
            ]
        )
    )
    torch.manual_seed(0)
    data = load_data(run.dataset, torch.device("cpu"))
    vae = VAE(run.model, data.channels, data.image_size)
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    for step, (images, labels) in zip(range(40), data.train.batches(64, epoch=0, seed=0)):
        losses, _ = vae.elbo_losses(to_pixels(images, "unit"), labels, step)
        optimizer.zero_grad()
        losses["encoder"].backward()
        optimizer.step()
    return vae.eval(), to_pixels(data.test.take(64)[0], "unit")


def grouped_bound(log_w: torch.Tensor, k: int) -> float:
    """-log-mean-exp over groups of k of the draws, averaged over groups and images."""
    groups = log_w.view(log_w.shape[0] // k, k, -1)
    return float(-(torch.logsumexp(groups, dim=1) - math.log(k)).mean())


def test_log_weights_average_to_the_elbo(vae_and_images):
    vae, x = vae_and_images
    torch.manual_seed(1)
    log_w = vae.log_importance_weights(x, 400).double()
    with torch.no_grad():
        recon, kl = vae.elbo_terms(x, None)
        recon = torch.stack([vae.elbo_terms(x, None)[0] for _ in range(50)]).mean(0)  # analytic KL, less noise
    assert float(-log_w.mean()) == pytest.approx(float((recon + kl).mean()), rel=5e-3)


def test_iwae_tightens_with_k(vae_and_images):
    vae, x = vae_and_images
    torch.manual_seed(2)
    log_w = vae.log_importance_weights(x, 100).double()
    k1, k10, k100 = (grouped_bound(log_w, k) for k in (1, 10, 100))
    assert k1 > k10 > k100
    assert k1 - k100 > 0.5  # nats: a real gap, not rounding
