"""Overrides naming a key or a config the tree does not have: one paragraph with the allowed names
and the nearest one, exit 2, before Hydra runs (``vaegan_runner/config/override_keys.py``)."""

from __future__ import annotations

import pytest

from runner_utils import CONFIGS, run_cli
from vaegan_runner.config.override_keys import jobs_to_check, refuse_unknown_keys, unknown_key_in


def message(*overrides: str) -> str | None:
    return unknown_key_in(list(overrides), str(CONFIGS), "train")


def test_an_unknown_key_lists_its_parents_keys_and_the_nearest():
    text = message("trainer.epochs=3")
    assert text is not None
    assert text.startswith("trainer.epochs=3: trainer has no key 'epochs'; did you mean trainer.max_epochs?")
    assert "max_steps" in text and "batch_size" in text and "+trainer" not in text


def test_a_family_key_is_looked_up_in_the_chosen_family():
    text = message("model=gan", "model.latnt_dim=3")
    assert text is not None
    assert "model has no key 'latnt_dim' (with model=gan); did you mean model.latent_dim?" in text
    assert "beta" not in text.split("Keys of model:")[1]  # the VAE's key is not the GAN's


def test_a_misspelt_top_level_key_and_a_key_below_a_missing_one():
    text = message("traner.max_epochs=1")
    assert text is not None and "top-level key 'traner'; did you mean trainer?" in text
    text = message("model.foo.bar=1")
    assert text is not None and "model has no key 'foo' (with model=vae)." in text


@pytest.mark.parametrize("group,typo,nearest", [("model", "vea", "vae"), ("dataset", "cifar", "cifar10")])
def test_an_unknown_config_lists_the_groups_choices(group, typo, nearest):
    text = message(f"{group}={typo}")
    assert text is not None
    assert f"there is no {group} config named '{typo}' (did you mean {group}={nearest}?)" in text
    for choice in sorted(p.stem for p in (CONFIGS / group).glob("*.yaml")):
        assert choice in text
    assert "search path" not in text


@pytest.mark.parametrize(
    "overrides", [[], ["model=gan", "optimizer.discriminator.lr=1e-3"], ["+model.foo=1"], ["dataset=cifar10"]]
)
def test_overrides_that_compose_are_left_alone(overrides):
    # an added key (+) composes; the runner's own validation refuses it later with its own message
    assert message(*overrides) is None


def test_sweeps_are_checked_at_their_first_value_and_every_config_choice():
    jobs = jobs_to_check(["model=vae,gan", "seed=0,1", "optimizer.lr=1e-4,2e-4", "hydra.run.dir=x"])
    assert jobs == [["model=vae", "seed=0", "optimizer.lr=0.0001"], ["model=gan", "seed=0", "optimizer.lr=0.0001"]]
    assert jobs_to_check(["optimizer.lr=interval(1e-4,1e-3)", "trainer.max_steps=5"]) == [["trainer.max_steps=5"]]


def test_a_bad_choice_late_in_a_sweep_exits_2_quoting_the_command_line(capsys):
    with pytest.raises(SystemExit) as stop:
        refuse_unknown_keys(["-m", "model=vae,gaan"], str(CONFIGS), "train")
    assert stop.value.code == 2
    assert "model=vae,gaan: there is no model config named 'gaan' (did you mean model=gan?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        refuse_unknown_keys(["-m", "optimizer.lrr=1e-4,2e-4"], str(CONFIGS), "train")
    assert "optimizer.lrr=1e-4,2e-4: optimizer has no key 'lrr'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_line_refuses_an_unknown_key_before_any_work(tmp_path):
    result = run_cli(["trainer.epochs=3"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "did you mean trainer.max_epochs?" in result.stderr
    assert "Traceback" not in result.stderr and "To append" not in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_sweep_without_multirun_says_to_add_m(capsys):
    with pytest.raises(SystemExit) as stop:
        refuse_unknown_keys(["optimizer.lr=1e-4,2e-4", "dataset=shapes"], str(CONFIGS), "train")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert (
        "optimizer.lr=1e-4,2e-4: several values are a sweep" in err and "vaegan-train -m optimizer.lr=1e-4,2e-4" in err
    )
    refuse_unknown_keys(["-m", "optimizer.lr=1e-4,2e-4", "dataset=shapes"], str(CONFIGS), "train")  # with -m: fine
    refuse_unknown_keys(["eval.final_metrics=[recon_mse,domain_fid]"], str(CONFIGS), "train")  # a list, not a sweep
