"""One optimizer update per phase: losses, the split backward pass, checks, clipping, steps.

``PhaseRunner`` owns what an update needs besides the family: an optimizer per network and
its learning-rate schedule, each network's trainable parameters, the precision (autocast and
fp16 loss scaling), gradient clipping and, under torchrun, gradient averaging across processes.
"""

from __future__ import annotations

import logging

import torch

from ..models import Family
from ..models.base import Phase
from .device import Precision
from .distributed import Distributed
from .lr_schedule import ScheduleConfig, build_schedulers, scale_base_lrs, step_schedulers
from .optim import build_optimizers
from .run_log import tag_of


class NonFiniteStep(Exception):
    """A loss or gradient of this step is inf or NaN; no optimizer has stepped on it."""

    def __init__(self, step: int, phase: str, names: list[str]):
        super().__init__(f"non-finite {', '.join(names)} at step {step + 1} (phase {phase})")


class PhaseRunner:
    """Runs a family's phases: ``run`` for one phase, ``run_due`` for those due at a step."""

    def __init__(
        self,
        family: Family,
        optimizers: dict[str, torch.optim.Optimizer],
        precision: Precision,
        grad_clip: float | None = None,
        dist: Distributed | None = None,
        schedule: ScheduleConfig | None = None,
        total_steps: int | None = None,
    ):
        self.family, self.optimizers, self.precision = family, optimizers, precision
        self.grad_clip, self.dist = grad_clip, dist
        self.params = {
            name: [p for p in net.parameters() if p.requires_grad] for name, net in family.networks().items()
        }
        constant = schedule is None or (schedule.name == "constant" and not schedule.warmup_steps)
        self.schedulers = {} if constant or schedule is None else build_schedulers(schedule, optimizers, total_steps)
        if schedule is not None and total_steps and schedule.warmup_steps >= total_steps:
            logging.getLogger("vaegan_runner").warning(
                "optimizer.schedule.warmup_steps=%d is not shorter than the run (%d steps): the learning "
                "rate never reaches its base value",
                schedule.warmup_steps,
                total_steps,
            )

    @classmethod
    def for_run(
        cls, run, family: Family, dist: Distributed | None = None, total_steps: int | None = None
    ) -> PhaseRunner:
        """The optimizers, their schedule over ``total_steps``, precision and clipping that
        ``run`` (a RunConfig) asks for."""
        precision = Precision(run.trainer.amp, family.device)
        return cls(
            family,
            build_optimizers(run.optimizer, family.networks()),
            precision,
            run.trainer.grad_clip,
            dist,
            run.optimizer.schedule,
            total_steps,
        )

    def run_due(self, phases: list[Phase], x: torch.Tensor, y: torch.Tensor, step: int, log) -> None:
        """Run each phase due at ``step`` on batch ``x`` with labels ``y``, adding its logs to
        ``log`` (a RunLog)."""
        for phase in phases:
            if step % phase.interval == 0:
                log.add(self.run(phase, x, y, step))

    def run(self, phase: Phase, x: torch.Tensor, y: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One update of ``phase``'s networks on batch ``x`` (labels ``y``); returns the phase's logs.

        Before any optimizer steps, the phase's losses and gradient norms are checked (one host
        sync per phase); a non-finite one raises ``NonFiniteStep``. With an fp16 loss scaler the
        gradients are left to the scaler, which skips steps with inf gradients by design.
        """
        scaler = self.precision.scaler
        with self.precision.autocast():
            losses, logs = phase.losses(x, y, step)
        if set(losses) != set(phase.networks):
            raise RuntimeError(
                f"{type(self.family).__name__} phase {phase.name!r} returned losses for "
                f"{sorted(losses)}, but updates {sorted(phase.networks)}"
            )
        for net in phase.networks:
            self.optimizers[net].zero_grad(set_to_none=True)
        backward_split(losses, self.params, scaler)
        checks = {tag_of(name, "loss"): value for name, value in logs.items()}
        checks.update({f"{net} loss": loss for net, loss in losses.items()})
        for net in phase.networks:
            if self.dist is not None:
                self.dist.average_gradients(self.params[net])
            if self.grad_clip is not None:
                scaler.unscale_(self.optimizers[net])
                checks[f"{net} gradient"] = torch.nn.utils.clip_grad_norm_(self.params[net], self.grad_clip)
            elif not scaler.is_enabled():
                checks[f"{net} gradient"] = torch.nn.utils.get_total_norm(
                    [p.grad for p in self.params[net] if p.grad is not None]
                )
        bad = nonfinite(checks, self.dist)
        if bad:
            if self.grad_clip is not None and scaler.is_enabled():
                scaler.update()  # closes the unscale_ calls above (and lowers the scale)
            raise NonFiniteStep(step, phase.name, bad)
        for net in phase.networks:
            scaler.step(self.optimizers[net])
        scaler.update()
        if phase.after is not None:
            phase.after(step)
        return logs

    def end_step(self) -> None:
        """After every training step (a skipped one too): move the learning rates along the schedule."""
        if self.schedulers:
            step_schedulers(self.schedulers)

    # --- what the loop reads and restores -------------------------------------------------------
    def zero_grad(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def learning_rates(self) -> dict[str, float]:
        return {name: optimizer.param_groups[0]["lr"] for name, optimizer in self.optimizers.items()}

    def scale_learning_rates(self, factor: float, networks: list[str] | None = None) -> None:
        """Multiply the learning rate of ``networks`` (default: all), and the rest of its
        schedule, by ``factor`` (a rollback, or a resume with another ``optimizer.lr``)."""
        names = list(self.optimizers) if networks is None else networks
        if self.schedulers:
            scale_base_lrs({name: self.schedulers[name] for name in names}, factor)
            return
        for name in names:
            for group in self.optimizers[name].param_groups:
                group["lr"] *= factor

    def state_dicts(self) -> tuple[dict[str, dict], dict, dict[str, dict]]:
        """(each optimizer's state by network name, the loss scaler's state, each schedule's state)."""
        return (
            {name: opt.state_dict() for name, opt in self.optimizers.items()},
            self.precision.scaler.state_dict(),
            {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()},
        )

    def load_state_dicts(
        self,
        optimizers: dict[str, dict],
        scaler: dict,
        schedulers: dict[str, dict] | None = None,
    ) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(optimizers[name])
        self.precision.scaler.load_state_dict(scaler)
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict((schedulers or {})[name])


def nonfinite(values: dict[str, torch.Tensor], dist: Distributed | None) -> list[str]:
    """The names of the values with an inf or NaN (every rank agrees)."""
    finite = torch.stack([torch.isfinite(v.detach().float()).all() for v in values.values()])
    if dist is not None and dist.enabled:
        finite = dist.mean(finite.float()) == 1
    return [name for name, ok in zip(values, finite.tolist()) if not ok]


def backward_split(losses: dict[str, torch.Tensor], params: dict[str, list], scaler) -> None:
    """Back-propagate each network's loss into that network's parameters only.

    Networks that share one loss tensor (a VAE's encoder and decoder) share one backward
    pass; ``inputs=`` keeps every other network's ``.grad`` untouched.
    """
    groups: dict[int, tuple[torch.Tensor, list]] = {}
    for net, loss in losses.items():
        groups.setdefault(id(loss), (loss, []))[1].extend(params[net])
    passes = list(groups.values())
    for i, (loss, inputs) in enumerate(passes):
        scaler.scale(loss).backward(inputs=inputs, retain_graph=i < len(passes) - 1)
