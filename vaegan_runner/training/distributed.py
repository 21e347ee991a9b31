"""Data-parallel training under ``torchrun`` (gloo on CPU, nccl on CUDA).

    torchrun --nproc_per_node=2 -m vaegan_runner.train model=gan trainer.batch_size=128

Every rank holds the same networks and sees its own slice of each global batch
(``trainer.batch_size`` is the global batch; each of N ranks takes batch_size / N). After a
phase's backward pass the gradients of the networks that phase updates are averaged over the
ranks (one all-reduce per network, on one flat buffer), so every rank takes the same
optimizer step: the gradient of the mean loss over the global batch, as one process would.

Why not ``DistributedDataParallel``: its reducer expects one backward pass per forward pass
and every parameter of the wrapped module either used or declared unused. A GAN phase runs D
forward while only G is updated, and the loop's ``backward(inputs=...)`` sends each loss into
its own network only; both break DDP's bookkeeping. Averaging the gradients of exactly the
networks a phase updates is the same arithmetic without those assumptions.

Rank 0 alone logs, evaluates, writes images, metrics and checkpoints. Checkpoints do not
depend on the world size, so a run resumes on any number of processes.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from ..config.checks import ConfigError

TIMEOUT = datetime.timedelta(hours=2)  # rank 0 may evaluate (Inception FID) while the others wait


class Distributed:
    """The process group of this run, or a single process (``world_size == 1``)."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch_size: int) -> tuple[int, int]:
        """(rank, world size): which slice of each global batch this process trains on."""
        if batch_size % self.world_size:
            raise ConfigError(
                "trainer.batch_size",
                f"{batch_size} does not split evenly over "
                f"{self.world_size} processes; use a multiple of {self.world_size}",
            )
        return self.rank, self.world_size

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over the ranks (one collective)."""
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over the ranks."""
        if self.enabled:
            values = values.clone()
            dist.all_reduce(values)
            values /= self.world_size
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if it is true on one of them."""
        if not self.enabled:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers everywhere (identical starting weights)."""
        if self.enabled:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def from_environment(device: str) -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    ``device`` is the run's device setting: with CUDA each rank takes ``cuda:<LOCAL_RANK>`` and
    nccl, otherwise gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available() and not device.startswith("mps")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=TIMEOUT)
    return Distributed(rank, world_size, local_rank)
