"""TensorBoard scalars and image grids, and the progress bar, on one step axis.

Scalars from the training phases are summed on the device and read back once per
``log.every_n_steps`` (one host sync per interval, not one per step); what is logged is the
mean over the interval.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid
from tqdm.auto import tqdm


def tag_of(name: str, prefix: str) -> str:
    """``neg_elbo`` -> ``loss/neg_elbo``; a name with a slash (``acc/d_real``) stays as it is."""
    return name if "/" in name else f"{prefix}/{name}"


class RunLog:
    def __init__(self, run_dir: Path, start_step: int, total_steps: int, progress_bar: bool):
        # purge_step drops events a crashed run wrote after its last checkpoint
        self.writer = SummaryWriter(str(run_dir), purge_step=start_step + 1 if start_step else None)
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not progress_bar,
                        dynamic_ncols=True, unit="step", desc="train")
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._images = 0
        self._seconds = 0.0
        self._tick = time.perf_counter()

    # --- training scalars -------------------------------------------------------------------
    def add(self, logs: dict[str, torch.Tensor]) -> None:
        for name, value in logs.items():
            value = value.detach().float()
            self._sums[name] = self._sums[name] + value if name in self._sums else value
            self._counts[name] = self._counts.get(name, 0) + 1

    def step_done(self, images: int) -> None:
        now = time.perf_counter()
        self._seconds += now - self._tick
        self._tick = now
        self._images += images
        self.bar.update(1)

    def pause(self) -> None:
        """Time from here to the next ``resume`` (evaluation, checkpoints) is not training."""
        self._seconds += time.perf_counter() - self._tick

    def resume(self) -> None:
        self._tick = time.perf_counter()

    def flush(self, step: int, epoch: int, lrs: dict[str, float]) -> dict[str, float]:
        """Write the interval's means; returns them (with ``perf/images_per_sec``)."""
        names = list(self._sums)
        means = torch.stack([self._sums[n] / self._counts[n] for n in names]).tolist() if names else []
        scalars = {tag_of(n, "loss"): v for n, v in zip(names, means)}
        if self._seconds > 0:
            scalars["perf/images_per_sec"] = self._images / self._seconds
        scalars.update({f"lr/{net}": lr for net, lr in lrs.items()})
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.bar.set_postfix(epoch=epoch, **{"img/s": f"{scalars.get('perf/images_per_sec', 0):.0f}"},
                             **{n: f"{v:.4g}" for n, v in zip(names, means) if "/" not in n})
        self._sums.clear()
        self._counts.clear()
        self._images, self._seconds = 0, 0.0
        return scalars

    # --- everything else ----------------------------------------------------------------------
    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(tag_of(name, prefix), value, step)

    def images(self, tag: str, images: torch.Tensor, step: int, nrow: int | None = None) -> torch.Tensor:
        """Log a grid of images in [0,1]; returns the grid."""
        nrow = nrow or max(1, int(math.sqrt(images.shape[0])))
        grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
        self.writer.add_image(tag, grid, step)
        return grid

    def write(self, message: str) -> None:
        self.bar.write(message)

    def close(self) -> None:
        self.bar.close()
        self.writer.flush()
        self.writer.close()
