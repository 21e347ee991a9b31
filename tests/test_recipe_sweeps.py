"""scripts/recipe_sweeps.sh: every setting is a config the runner accepts, and the settings
measured before a default moved still pin the old value (docs/experiments.md reads them so)."""

import re
import shlex

import pytest

from runner_utils import REPO, compose_config
from vaegan_runner.run_schema import validate

SCRIPT = (REPO / "scripts" / "recipe_sweeps.sh").read_text()
SETTINGS = dict(re.findall(r'^  \[([\w.\-]+)\]="([^"]*)"$', SCRIPT, flags=re.M))


def test_the_script_lists_its_settings_in_order():
    order = re.search(r"ORDER=\(([^)]*)\)", SCRIPT).group(1).split()
    assert len(SETTINGS) >= 20 and sorted(order) == sorted(SETTINGS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_setting_composes_and_validates(name):
    cfg = validate(compose_config(["dataset=mnist", "trainer.max_epochs=3", *shlex.split(SETTINGS[name])]))
    if name.startswith("vae-"):  # measured at latent 16, the default then (32 now), with N(0, I) until the fifth round
        assert cfg.model.latent_dim in (8, 16, 32) and "model.latent_dim=" in SETTINGS[name]
        assert "model.prior=" in SETTINGS[name], f"{name} must say which prior it ran with"
    if name.startswith("gan-"):  # the generator average was on by default until the first round
        assert "model.ema.enabled=" in SETTINGS[name], f"{name} must say whether it ran with the generator average"
        assert cfg.model.ema.enabled == ("model.ema.enabled=true" in SETTINGS[name])
        assert "optimizer.lr=" in SETTINGS[name], f"{name} must say its learning rate (2e-4 until the sixth round)"
    if name.startswith("aae-"):  # latent 8 by default until the sixth round (16 now)
        assert "model.latent_dim=" in SETTINGS[name], f"{name} must say which latent size it ran with"
    if name.startswith(("aae-", "bigan-", "vaegan-")):  # 2e-4 until the sixth round (VAE-GAN: seventh)
        assert "optimizer.lr=" in SETTINGS[name], f"{name} must say its learning rate"
    if name.startswith("vaegan-"):  # gamma 0.1 until the seventh round (0.03 now)
        assert "model.gamma=" in SETTINGS[name], f"{name} must say its gamma"
