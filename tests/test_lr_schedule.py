"""Learning-rate schedules: the curve each one draws, and the optimizer following it."""

from __future__ import annotations

import math

import pytest
import torch

from vaegan_runner.training.lr_schedule import (
    ScheduleConfig,
    build_schedulers,
    lr_factor,
    scale_base_lrs,
    step_schedulers,
)


def schedule(name="constant", warmup_steps=0, final_factor=0.0, step_every=None, milestones=None, gamma=0.5):
    return ScheduleConfig(
        name=name,
        warmup_steps=warmup_steps,
        final_factor=final_factor,
        step_every=step_every,
        milestones=milestones,
        gamma=gamma,
    )


def curve(cfg, total):
    return [lr_factor(cfg, step, total) for step in range(total)]


def test_constant_is_flat():
    assert curve(schedule(), 5) == [1.0] * 5


def test_linear_reaches_zero_at_the_last_step():
    assert curve(schedule("linear"), 5) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_linear_and_cosine_stop_at_the_final_factor():
    assert curve(schedule("linear", final_factor=0.1), 3)[-1] == pytest.approx(0.1)
    cosine = curve(schedule("cosine", final_factor=0.1), 101)
    assert cosine[0] == 1.0 and cosine[-1] == pytest.approx(0.1)
    assert cosine[50] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(cosine, cosine[1:]))


def test_step_decays_every_step_every_steps():
    assert curve(schedule("step", step_every=2, gamma=0.1), 5) == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_step_decays_at_each_milestone():
    assert curve(schedule("step", milestones=[2, 3], gamma=0.1), 5) == pytest.approx([1, 1, 0.1, 0.01, 0.01])


def test_warmup_ramps_up_then_the_schedule_starts():
    values = curve(schedule("linear", warmup_steps=4), 9)
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4:] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_schedulers_move_every_network_and_keep_per_network_ratios():
    nets = {"generator": torch.nn.Linear(2, 2), "discriminator": torch.nn.Linear(2, 2)}
    optimizers = {
        "generator": torch.optim.Adam(nets["generator"].parameters(), lr=1e-3),
        "discriminator": torch.optim.Adam(nets["discriminator"].parameters(), lr=4e-3),
    }
    schedulers = build_schedulers(schedule("linear"), optimizers, total_steps=5)
    seen = []
    for _ in range(5):
        seen.append({n: o.param_groups[0]["lr"] for n, o in optimizers.items()})
        for o in optimizers.values():
            o.step()
        step_schedulers(schedulers)
    assert [s["generator"] for s in seen] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0])
    assert [s["discriminator"] for s in seen] == pytest.approx([4e-3, 3e-3, 2e-3, 1e-3, 0.0])


def test_a_reloaded_scheduler_continues_the_curve():
    def fresh():
        opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=1.0)
        return opt, build_schedulers(schedule("cosine", warmup_steps=2), {"net": opt}, total_steps=10)

    opt, schedulers = fresh()
    for _ in range(4):
        step_schedulers(schedulers)
    saved = (opt.state_dict(), schedulers["net"].state_dict())
    expected = []
    for _ in range(3):
        step_schedulers(schedulers)
        expected.append(opt.param_groups[0]["lr"])
    opt2, schedulers2 = fresh()
    opt2.load_state_dict(saved[0])
    schedulers2["net"].load_state_dict(saved[1])
    got = []
    for _ in range(3):
        step_schedulers(schedulers2)
        got.append(opt2.param_groups[0]["lr"])
    assert got == expected


def test_scaling_the_base_lrs_scales_the_rest_of_the_curve():
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    schedulers = build_schedulers(schedule("linear"), {"net": opt}, total_steps=5)
    step_schedulers(schedulers)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.75)
    scale_base_lrs(schedulers, 0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.375)
    step_schedulers(schedulers)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"name": "cosin"}, "schedule.name"),
        ({"name": "step"}, "schedule.step_every"),
        ({"name": "step", "step_every": 2, "milestones": [3]}, "schedule.step_every"),
        ({"name": "step", "milestones": [5, 3]}, "schedule.milestones"),
        ({"warmup_steps": -1}, "schedule.warmup_steps"),
        ({"final_factor": 1.5}, "schedule.final_factor"),
        ({"gamma": 0.0}, "schedule.gamma"),
    ],
)
def test_bad_schedules_name_the_key(kwargs, key):
    from vaegan_runner.config.checks import ConfigError

    with pytest.raises(ConfigError) as err:
        schedule(**kwargs)
    assert err.value.key == key


def test_a_warmup_as_long_as_the_run_is_a_warning(caplog, build_family):
    import logging

    from vaegan_runner.training.device import Precision
    from vaegan_runner.training.optim import build_optimizers
    from vaegan_runner.training.phase_runner import PhaseRunner

    run, family = build_family("vae", "optimizer.schedule.name=cosine", "optimizer.schedule.warmup_steps=100")
    with caplog.at_level(logging.WARNING, logger="vaegan_runner"):
        PhaseRunner(
            family,
            build_optimizers(run.optimizer, family.networks()),
            Precision("off", torch.device("cpu")),
            schedule=run.optimizer.schedule,
            total_steps=10,
        )
    assert any("warmup_steps=100 is not shorter than the run (10 steps)" in r.getMessage() for r in caplog.records)
