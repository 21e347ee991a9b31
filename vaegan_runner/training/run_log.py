"""TensorBoard scalars and image grids, and the progress bar, on one step axis.

Scalars from the training phases are summed on the device and read back once per
``log.every_n_steps`` (one host sync per interval, not one per step); what is logged is the
mean over the interval.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm


def tag_of(name: str, prefix: str) -> str:
    """``neg_elbo`` -> ``loss/neg_elbo``; a name with a slash (``acc/d_real``) stays as it is."""
    return name if "/" in name else f"{prefix}/{name}"


def to_log_files(message: str, level: int = logging.INFO) -> None:
    """Append ``message`` to the log files (``train.log``) only: the console has it already,
    written above the progress bar."""
    record = logging.LogRecord("vaegan_runner", level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and level >= handler.level:
            handler.handle(record)


class RunLog:
    """``run_dir=None``: a process that logs nothing (ranks other than 0) but still takes part
    in ``reduce``, the mean of the interval's scalars over the processes of a torchrun job."""

    def __init__(
        self,
        run_dir: Path | None,
        start_step: int,
        total_steps: int,
        progress_bar: bool,
        reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
    ):
        self.run_dir, self.reduce = run_dir, reduce
        self.writer = self._open_writer(start_step)
        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            disable=not progress_bar or run_dir is None,
            dynamic_ncols=True,
            unit="step",
            desc="train",
        )
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._images = 0
        self._seconds = 0.0
        self._tick = time.perf_counter()

    def _open_writer(self, start_step: int) -> SummaryWriter | None:
        if self.run_dir is None:
            return None
        # purge_step drops the events written after step ``start_step`` by an earlier life of
        # this run (a crash after its last checkpoint, or a rollback)
        return SummaryWriter(str(self.run_dir), purge_step=start_step + 1 if start_step else None)

    def restart(self, step: int) -> None:
        """Continue from ``step`` again (a rollback): later events are dropped, the interval
        starts over."""
        if self.writer is not None:
            self.writer.close()
        self.writer = self._open_writer(step)
        self._sums.clear()
        self._counts.clear()
        self._images, self._seconds = 0, 0.0
        self.bar.n = step
        self.bar.refresh()

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
        means = self.reduce(torch.stack([self._sums[n] / self._counts[n] for n in names])).tolist() if names else []
        scalars = {tag_of(n, "loss"): v for n, v in zip(names, means)}
        if self._seconds > 0:
            scalars["perf/images_per_sec"] = self._images / self._seconds
        scalars.update({f"lr/{net}": lr for net, lr in lrs.items()})
        for tag, value in scalars.items():
            if self.writer is not None:
                self.writer.add_scalar(tag, value, step)
        self.bar.set_postfix(
            epoch=epoch,
            **{"img/s": f"{scalars.get('perf/images_per_sec', 0):.0f}"},
            **{n: f"{v:.4g}" for n, v in zip(names, means) if "/" not in n},
        )
        self._sums.clear()
        self._counts.clear()
        self._images, self._seconds = 0, 0.0
        return scalars

    # --- everything else ----------------------------------------------------------------------
    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        assert self.writer is not None  # rank 0 alone (the one with a writer) logs these
        for name, value in values.items():
            self.writer.add_scalar(tag_of(name, prefix), value, step)

    def images(self, tag: str, images: torch.Tensor, step: int, nrow: int | None = None) -> torch.Tensor:
        """Log a grid of images in [0,1]; returns the grid."""
        from torchvision.utils import make_grid  # imported when used: it costs ~1.5 s of startup

        nrow = nrow or max(1, int(math.sqrt(images.shape[0])))
        grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
        assert self.writer is not None  # rank 0 alone (the one with a writer) logs images
        self.writer.add_image(tag, grid, step)
        return grid

    def hparams(self, settings: dict, metrics: dict[str, float]) -> None:
        """The HPARAMS tab's row for this run: its settings and final metrics (``final/<name>``,
        also written as scalars), in this run's own event file."""
        from torch.utils.tensorboard.summary import hparams

        assert self.writer is not None  # rank 0 alone (the one with a writer) writes the row
        file_writer = self.writer.file_writer
        assert file_writer is not None  # opened by SummaryWriter's constructor
        for summary in hparams(settings, metrics):
            file_writer.add_summary(summary)

    def warning(self, message: str, step: int) -> None:
        """A warning on the console and as a TensorBoard text note (``warnings``)."""
        if self.writer is None:
            return
        self.bar.write(f"warning: step {step}: {message}")
        to_log_files(f"step {step}: {message}", logging.WARNING)
        self.writer.add_text("warnings", message, step)

    def write(self, message: str) -> None:
        """A line on the console (above the progress bar) and in the run's ``train.log``."""
        self.bar.write(message)
        to_log_files(message)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
