"""The adversarial families with the WGAN-GP loss: training steps take the penalty, held-out
evaluation (no gradients) still works."""

from __future__ import annotations

import pytest
import torch

from runner_utils import FAST, compose_config
from vaegan_runner.models import family_class
from vaegan_runner.run_schema import validate

NO_BATCH_NORM = {"gan": ["model.discriminator.norm=none"], "bigan": ["model.discriminator.norm=none"]}


@pytest.mark.parametrize("model", ["gan", "vaegan", "aae", "bigan"])
def test_wgan_gp_families_evaluate_held_out_images(model):
    cfg = validate(
        compose_config(
            [f"model={model}", *FAST, "trainer.max_steps=2", "model.loss=wgan-gp", *NO_BATCH_NORM.get(model, [])]
        )
    )
    family = family_class(model)(cfg.model, 3, 32)
    x = torch.rand(8, 3, 32, 32)
    if cfg.model.pixel_range == "symmetric":
        x = 2 * x - 1
    penalised = [phase for phase in family.phases if "discriminator" in phase.networks]
    _, logs = penalised[0].losses(x, torch.zeros(8, dtype=torch.long), 0)
    assert logs["gp"] >= 0  # the penalty is part of D's training loss
    family.eval()
    held_out = family.evaluate(x, torch.zeros(8, dtype=torch.long))
    assert {"d_acc_real", "d_acc_fake"} <= set(held_out)
    assert all(torch.isfinite(v) for v in held_out.values())
