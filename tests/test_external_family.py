"""A family defined outside ``vaegan_runner/``: a package of its own declares it with the entry
point groups ``vaegan_runner.families`` (the class) and ``vaegan_runner.configs`` (its YAML on
Hydra's search path), and the runner finds, trains, evaluates, samples and resumes it through
the same commands as a built-in family. Copy this file to test a family of your own
(docs/adding-a-family.md)."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from runner_utils import FAST, REPO, compose_config, read_events, scalar_series
from vaegan_runner.config.checks import ConfigError
from vaegan_runner.config.search_path import VaeganRunnerSearchPathPlugin
from vaegan_runner.models import family_class, family_names
from vaegan_runner.run_schema import validate
from vaegan_runner.training.checkpoint import list_checkpoints, load_checkpoint
from vaegan_runner.training.checkpoint_migrations import with_added_keys

# A least-squares GAN (Mao et al. 2017) whose discriminator is called "critic": a network name
# without an optimizer.<network> block of its own, so it trains with the top-level optimizer.lr.
TOY_FAMILY = '''
"""A least-squares GAN whose discriminator is called ``critic``."""

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from vaegan_runner.config.checks import positive, require
from vaegan_runner.models import Family, FamilyConfig, Phase
from vaegan_runner.models.nets import build_decoder, build_encoder


@dataclass
class ToyConfig(FamilyConfig):
    n_critic: int = MISSING  # critic updates per generator update

    def __post_init__(self):
        super().__post_init__()
        positive(self.n_critic, "n_critic")
        require(not self.conditional, "conditional", "the toy GAN has no class-conditional networks")


class ToyGAN(Family):
    config_class = ToyConfig
    network_names = ("generator", "critic")

    def __init__(self, cfg, channels, image_size, num_classes=None):
        super().__init__(cfg, channels, image_size, num_classes)
        self.generator = build_decoder(cfg.net, channels, image_size, cfg.latent_dim)
        self.critic = build_encoder(cfg.net, channels, image_size, 1)
        self.phases = [
            Phase("critic", ("critic",), self.critic_losses),
            Phase("generator", ("generator",), self.generator_losses, interval=cfg.n_critic),
        ]

    def fake(self, n):
        return self.activate(self.generator(self.sample_latent(n)))

    def critic_losses(self, x, y, step):
        with torch.no_grad():
            fake = self.fake(x.shape[0])
        loss = 0.5 * ((self.critic(x) - 1).pow(2).mean() + self.critic(fake).pow(2).mean())
        return {"critic": loss}, {"critic": loss}

    def generator_losses(self, x, y, step):
        loss = 0.5 * (self.critic(self.fake(x.shape[0])) - 1).pow(2).mean()
        return {"generator": loss}, {"generator": loss}

    @torch.no_grad()
    def generate(self, z, y=None):
        return self.activate(self.generator(z))
'''

TOY_YAML = """\
# A least-squares GAN whose discriminator is called critic (read by toyfam/family.py)
name: toy
latent_dim: 16
pixel_range: symmetric
conditional: false
n_critic: 1
net:
  arch: mlp
  width: 8
  hidden: [64]
  norm: none
"""

TOY_ADAM = """\
# model=toy with optimizer=adam: the toy's own rate, for the generator and the critic
lr: 1.0e-3
"""

FAMILY_ENTRY = "toy = toyfam.family:ToyGAN"
CONFIG_ENTRY = "toyfam = toyfam.configs"


def write_package(site: Path, name: str = "toyfam", families: str = FAMILY_ENTRY, configs: str | None = CONFIG_ENTRY):
    """The package ``name`` in ``site``, as pip would install it: the module, its config folder
    and a ``<name>-0.1.dist-info`` whose entry points declare ``families`` (and ``configs``)."""
    package = site / name
    (package / "configs" / "model").mkdir(parents=True)
    (package / "configs" / "family_optimizer").mkdir()
    (package / "__init__.py").write_text("")
    (package / "family.py").write_text(TOY_FAMILY)
    (package / "configs" / "__init__.py").write_text("")
    (package / "configs" / "model" / "toy.yaml").write_text(TOY_YAML)
    (package / "configs" / "family_optimizer" / "toy_adam.yaml").write_text(TOY_ADAM)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    groups = f"[vaegan_runner.families]\n{families}\n"
    if configs:
        groups += f"\n[vaegan_runner.configs]\n{configs}\n"
    (info / "entry_points.txt").write_text(groups)


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(**write_package options)``: the package on this process's path (and its
    modules forgotten afterwards)."""
    site = tmp_path / "site"
    names = []

    def installed(name: str = "toyfam", **options) -> Path:
        write_package(site, name, **options)
        names.append(name)
        return site

    monkeypatch.syspath_prepend(str(site))
    yield installed
    for module in [m for m in sys.modules if m.split(".")[0] in names]:
        del sys.modules[module]


def test_an_installed_family_is_listed_without_being_imported(install):
    install()
    assert "toy" in family_names() and "toyfam.family" not in sys.modules
    assert family_class("toy").__name__ == "ToyGAN"
    assert set(family_names()) >= {"vae", "gan", "vaegan", "aae", "bigan", "ssaae"}


def test_an_entry_point_that_cannot_be_imported_is_one_paragraph_naming_it(install):
    install("toybroken", families="broken = toybroken.missing:ToyGAN", configs=None)
    assert family_class("vae").__name__ == "VAE"  # the other families are unaffected
    with pytest.raises(ConfigError) as caught:
        family_class("broken")
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("model: the family 'broken' cannot be loaded")
    assert "broken = toybroken.missing:ToyGAN (group vaegan_runner.families, distribution toybroken 0.1)" in message
    assert "ModuleNotFoundError: No module named 'toybroken.missing'" in message


def test_an_entry_point_that_is_not_a_family_is_refused(install):
    install("toynotfamily", families="notfamily = toynotfamily.family:ToyConfig", configs=None)
    with pytest.raises(ConfigError, match="names <class 'toynotfamily.family.ToyConfig'>, not a subclass"):
        family_class("notfamily")


def test_a_name_a_built_in_family_has_is_refused_naming_both(install):
    install("toyclash", families="gan = toyclash.family:ToyGAN", configs=None)
    with pytest.raises(ConfigError) as caught:
        family_class("vae")  # whichever family is asked for: the installation is ambiguous
    message = str(caught.value)
    assert message.startswith("vaegan_runner.families: two families are named 'gan'")
    assert "the built-in vaegan_runner.models.gan:GAN" in message
    assert "gan = toyclash.family:ToyGAN (group vaegan_runner.families, distribution toyclash 0.1)" in message


def test_an_unknown_family_lists_the_installed_ones_too(install):
    install()
    with pytest.raises(
        ConfigError, match=r"^model.name: unknown model family 'nope'; allowed: aae, .*, ssaae, toy, vae"
    ):
        family_class("nope")


def test_hydra_searchpath_on_the_command_line_finds_a_family_yaml(install):
    """Without the ``vaegan_runner.configs`` entry point, Hydra's own ``hydra.searchpath``
    puts the package's configs on the search path; the family's dataclass checks its keys."""
    install(configs=None)
    overrides = ["model=toy", *FAST, "trainer.max_steps=2", "hydra.searchpath=[pkg://toyfam.configs]"]
    run = validate(compose_config(overrides))
    assert type(run.model).__name__ == "ToyConfig" and run.model.n_critic == 1
    assert run.optimizer.lr == 1.0e-3  # the package's optional family_optimizer/toy_adam.yaml
    with pytest.raises(ConfigError, match="model.n_critic: must be > 0"):
        validate(compose_config([*overrides, "model.n_critic=0"]))


def test_the_search_path_plugin_appends_each_declared_config_package(install):
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

    install()
    search_path = ConfigSearchPathImpl()
    search_path.append("main", f"file://{REPO / 'configs'}")
    VaeganRunnerSearchPathPlugin().manipulate_search_path(search_path)
    VaeganRunnerSearchPathPlugin().manipulate_search_path(search_path)  # once each, however often it runs
    assert [(e.provider, e.path) for e in search_path.get_path()] == [
        ("main", f"file://{REPO / 'configs'}"),
        ("vaegan_runner.configs:toyfam", "pkg://toyfam.configs"),
    ]


def test_hydra_finds_the_plugin_by_its_scan_and_through_vaegan_train(monkeypatch):
    """Hydra's scan of the ``hydra_plugins`` namespace finds the class there (a wheel install);
    ``vaegan-train`` registers it too, for the editable installs that scan cannot list."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    import vaegan_runner.train  # noqa: F401 -- registers the plugin, as vaegan-train does

    assert VaeganRunnerSearchPathPlugin in Plugins.instance().discover(SearchPathPlugin)
    monkeypatch.syspath_prepend(str(REPO))  # the checkout's hydra_plugins/, where a wheel installs it
    from hydra_plugins.vaegan_runner_search_path import VaeganRunnerSearchPathPlugin as scanned

    assert scanned is VaeganRunnerSearchPathPlugin


@pytest.mark.parametrize("model", family_names())
def test_an_old_checkpoint_gets_its_familys_added_keys_from_the_class(model):
    """A checkpoint written before a family's key existed loads with the value its class's
    ``added_keys`` gives, and that config validates."""
    resolved = OmegaConf.to_container(compose_config([f"model={model}", *FAST, "trainer.max_steps=2"]), resolve=True)
    added = family_class(model).added_keys
    old = copy.deepcopy(resolved)
    for key in added:
        *parents, last = key.split(".")
        node = old["model"]
        for part in parents:
            node = node[part]
        del node[last]
    loaded = with_added_keys(old)
    for key, value in added.items():
        assert OmegaConf.select(OmegaConf.create(loaded["model"]), key) == value, key
    validate(OmegaConf.create(loaded))


def test_a_checkpoint_of_a_family_not_installed_loads_its_other_keys():
    config = {"model": {"name": "not_installed"}, "dataset": {"name": "shapes"}}
    loaded = with_added_keys(config)
    assert loaded["model"] == {"name": "not_installed", "conditional": False}  # ADDED_KEYS' model.conditional
    assert loaded["checkpoint"]["keep_best"] is False


def run_command(module: str, args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess:
    """``python -m <module> ARGS`` (vaegan-train, -eval, -sample) with ``site`` on the path."""
    path = os.pathsep.join(p for p in (str(site), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow  # four subprocesses: train, eval, sample, resume
def test_an_external_family_trains_evaluates_samples_and_resumes(tmp_path):
    site, work = tmp_path / "site", tmp_path / "work"
    write_package(site)
    work.mkdir()
    run_dir = work / "run"
    train = run_command(
        "vaegan_runner.train",
        [
            "model=toy",
            *FAST,
            "trainer.max_steps=8",
            "log.every_n_steps=2",
            "log.image_every_n_steps=4",
            "eval.every_n_steps=4",
            "checkpoint.every_n_steps=4",
            "eval.metrics=[class_coverage]",
            "eval.final_metrics=[domain_fid,class_coverage]",
            f"hydra.run.dir={run_dir}",
        ],
        work,
        site,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert math.isfinite(metrics["final/domain_fid"]) and metrics["final/class_coverage"] >= 1
    assert (run_dir / "samples.png").is_file()
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step_00000004.pt", "step_00000008.pt"]
    saved = load_checkpoint(run_dir / "checkpoints" / "step_00000008.pt")
    assert saved["config"]["model"]["name"] == "toy" and set(saved["optimizers"]) == {"generator", "critic"}
    for network in ("generator", "critic"):  # no optimizer.critic block: the top-level lr, the package's 1e-3
        assert saved["optimizers"][network]["param_groups"][0]["lr"] == pytest.approx(1.0e-3)
    events = read_events(run_dir)
    for tag in ("loss/critic", "loss/generator"):
        losses = [value for _, value in scalar_series(events, tag)]
        assert len(losses) == 4 and all(math.isfinite(v) and v > 0 for v in losses), (tag, losses)
        assert len(set(losses)) > 1, (tag, losses)  # it trains

    report = tmp_path / "eval.json"
    evaluated = run_command(
        "vaegan_runner.cli.eval", [str(run_dir), "metrics=class_coverage", f"out={report}"], work, site
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    scored = json.loads(report.read_text())
    assert scored["model"] == "toy" and scored["step"] == 8 and scored["metrics"]["class_coverage"] >= 1

    grid = tmp_path / "drawn.png"
    sampled = run_command("vaegan_runner.cli.sample", [str(run_dir), "n=16", f"out={grid}"], work, site)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert grid.is_file()

    resumed = run_command("vaegan_runner.train", [f"resume={run_dir}", "trainer.max_steps=12"], work, site)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "checkpoints" / "step_00000012.pt").is_file()
    assert f"resuming {run_dir / 'checkpoints' / 'step_00000008.pt'} at step 8" in resumed.stdout + resumed.stderr
    assert load_checkpoint(run_dir / "checkpoints" / "step_00000012.pt")["step"] == 12
