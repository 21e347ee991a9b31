"""Exponential moving average of a network's weights (used for sampling, not training)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(net: nn.Module) -> nn.Module:
    """A frozen copy of ``net`` to hold the average."""
    shadow = copy.deepcopy(net)
    shadow.requires_grad_(False)
    return shadow


@torch.no_grad()
def ema_update(shadow: nn.Module, net: nn.Module, decay: float) -> None:
    """shadow <- decay * shadow + (1 - decay) * net; buffers (BatchNorm statistics) copied."""
    torch._foreach_lerp_(list(shadow.parameters()), list(net.parameters()), 1.0 - decay)
    for b_shadow, b_net in zip(shadow.buffers(), net.buffers()):
        b_shadow.copy_(b_net)
