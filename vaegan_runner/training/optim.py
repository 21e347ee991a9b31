"""One optimizer per network, from ``configs/optimizer/*.yaml``.

The top-level keys apply to every network; ``optimizer.<network>.lr`` and
``optimizer.<network>.weight_decay`` override them for one network (two time-scale updates,
Heusel et al. 2017), for the network names of ``NETWORKS``; a family's network of another name
(a ``critic``, say) has no block of its own and trains with the top-level values. Keys an
optimizer does not use are null in its YAML file. The learning-rate schedule
(``optimizer.schedule``) is in ``lr_schedule.py``. Each optimizer ``name`` is a builder
registered in ``OPTIMIZER_KINDS`` with the optional keys it reads.

Every setting is range-checked before any work (``OptimizerConfig.__post_init__``): the ranges of
``RANGES`` for the optional keys, then each network's optimizer is built once on a one-element
parameter, so whatever torch itself refuses is refused here too, naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn

from ..config.checks import ConfigError, non_negative, positive, require
from ..registry import Registry
from .lr_schedule import ScheduleConfig


@dataclass(frozen=True)
class OptimizerKind:
    """An optimizer a config may name: ``build(cfg, params, lr, weight_decay)`` and the optional
    keys of ``OptimizerConfig`` it reads (the others must be null)."""

    name: str
    build: Callable[..., torch.optim.Optimizer]
    uses: tuple[str, ...]


OPTIMIZER_KINDS: Registry[OptimizerKind] = Registry("optimizer", "name", record=OptimizerKind)


@OPTIMIZER_KINDS.register("adam", uses=("betas", "eps"))
def _adam(cfg, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=weight_decay)


@OPTIMIZER_KINDS.register("adamw", uses=("betas", "eps"))
def _adamw(cfg, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=weight_decay)


@OPTIMIZER_KINDS.register("rmsprop", uses=("alpha", "momentum", "eps"))
def _rmsprop(cfg, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(
        params, lr=lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum, weight_decay=weight_decay
    )


@OPTIMIZER_KINDS.register("sgd", uses=("momentum", "nesterov"))
def _sgd(cfg, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=weight_decay)


OPTIMIZERS = OPTIMIZER_KINDS.names()
NETWORKS = ("encoder", "decoder", "generator", "discriminator")  # the networks with an optimizer.<network> block

# The allowed values of the optional number keys: (test, the range in words); betas are checked apart.
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "eps": (
        lambda e: e > 0.0,
        "> 0 (it keeps a denominator away from 0: with 0, a parameter with no gradient gets 0/0)",
    ),
    "alpha": (
        lambda a: 0.0 < a < 1.0,
        "in (0, 1), the smoothing constant of the running mean of squared gradients "
        "(1 or more never lets a gradient in, or turns the mean negative, and the run diverges; usual: 0.9 to 0.99)",
    ),
    "momentum": (lambda m: 0.0 <= m < 1.0, "in [0, 1) (1 or more never lets old gradients decay; usual: 0.9)"),
}


@dataclass
class NetworkOptimizerConfig:
    lr: float | None = MISSING  # null: the top-level lr
    weight_decay: float | None = MISSING  # null: the top-level weight_decay


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    betas: list[float] | None = MISSING  # adam, adamw
    eps: float | None = MISSING  # adam, adamw, rmsprop
    alpha: float | None = MISSING  # rmsprop smoothing constant
    momentum: float | None = MISSING  # sgd, rmsprop
    nesterov: bool | None = MISSING  # sgd
    encoder: NetworkOptimizerConfig = MISSING
    decoder: NetworkOptimizerConfig = MISSING
    generator: NetworkOptimizerConfig = MISSING
    discriminator: NetworkOptimizerConfig = MISSING
    schedule: ScheduleConfig = MISSING

    def __post_init__(self):
        uses = OPTIMIZER_KINDS.get(self.name).uses
        for key in ("lr", "weight_decay", "eps", "alpha", "momentum"):
            value = getattr(self, key)
            require(value is None or math.isfinite(value), key, f"must be a finite number, got {value!r}")
        positive(self.lr, "lr")
        non_negative(self.weight_decay, "weight_decay")
        for key in ("betas", "eps", "alpha", "momentum", "nesterov"):
            value = getattr(self, key)
            used = key in uses
            require(value is not None or not used, key, f"{self.name} needs a value")
            require(
                value is None or used,
                key,
                f"is not used by {self.name}; leave it null "
                f"(the keys {self.name} reads: lr, weight_decay, {', '.join(sorted(uses))})",
            )
            if value is not None and key in RANGES:
                test, allowed = RANGES[key]
                require(test(value), key, f"must be {allowed}, got {value}")
        if self.betas is not None:
            require(
                len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
                "betas",
                f"needs two values in [0, 1), got {list(self.betas)}",
            )
        require(
            not self.nesterov or (self.momentum is not None and self.momentum > 0),
            "nesterov",
            f"true needs optimizer.momentum > 0 (Nesterov momentum is a kind of momentum), got "
            f"momentum={self.momentum}; set optimizer.momentum=0.9, or optimizer.nesterov=false",
        )
        for net in NETWORKS:
            override = getattr(self, net)
            for key in ("lr", "weight_decay"):
                value = getattr(override, key)
                require(
                    value is None or math.isfinite(value), f"{net}.{key}", f"must be a finite number, got {value!r}"
                )
            positive(override.lr, f"{net}.lr", allow_none=True)
            if override.weight_decay is not None:
                non_negative(override.weight_decay, f"{net}.weight_decay")
        for net in NETWORKS:
            try:  # torch's own checks, on one parameter: whatever it would refuse at the first step
                build_optimizer(self, net, [torch.zeros(1, requires_grad=True)])
            except (ValueError, TypeError, RuntimeError) as err:
                raise ConfigError("", f"torch.optim refuses optimizer={self.name} with these settings: {err}") from None

    def overridden_networks(self) -> list[str]:
        return [n for n in NETWORKS if getattr(self, n).lr is not None or getattr(self, n).weight_decay is not None]


def check_networks(cfg: OptimizerConfig, family: str, networks: tuple[str, ...]) -> None:
    """A per-network override must name a network the family has."""
    for net in cfg.overridden_networks():
        if net not in networks:
            raise ConfigError(
                f"optimizer.{net}", f"model={family} has no {net}; its networks are {', '.join(networks)}"
            )


def configured_lr(optimizer: dict, network: str) -> float:
    """The base lr that ``optimizer`` (a resolved ``optimizer`` config, as a checkpoint holds
    it) gives ``network``: its own ``optimizer.<network>.lr``, else (null, or a network without
    a block of its own) the top-level ``lr``."""
    own = (optimizer.get(network) or {}).get("lr") if network in NETWORKS else None
    return own if own is not None else optimizer["lr"]


def network_override(cfg: OptimizerConfig, network: str) -> NetworkOptimizerConfig:
    """``optimizer.<network>`` for a network of ``NETWORKS``; for any other name, a block that
    overrides nothing (null lr and weight_decay: the top-level values)."""
    return getattr(cfg, network) if network in NETWORKS else NetworkOptimizerConfig(lr=None, weight_decay=None)


def build_optimizer(cfg: OptimizerConfig, network: str, params) -> torch.optim.Optimizer:
    override = network_override(cfg, network)
    lr = override.lr if override.lr is not None else cfg.lr
    wd = override.weight_decay if override.weight_decay is not None else cfg.weight_decay
    return OPTIMIZER_KINDS.get(cfg.name).build(cfg, params, lr=lr, weight_decay=wd)


def build_optimizers(cfg: OptimizerConfig, networks: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    return {name: build_optimizer(cfg, name, net.parameters()) for name, net in networks.items()}
