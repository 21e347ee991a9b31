"""Ways a run ends early, each with its own exit code, and the signal handling behind them.

    0  finished
    1  a crash (a Python traceback)
    2  a config or input error, before any work (``ConfigError``)
    3  stopped by SIGTERM or SIGINT after writing a checkpoint (resume with ``resume=auto``), or
       by SIGTERM during the end-of-run evaluation (``resume=auto`` evaluates again)
    4  training diverged: a non-finite loss or gradient (``trainer.on_nonfinite``)
  130  Ctrl-C during the end-of-run evaluation or ``vaegan-eval``: what was computed is written,
       marked incomplete (the run's checkpoint is saved); or a second Ctrl-C: exit at once,
       no checkpoint (the previous one is intact)

Cluster schedulers send SIGTERM some time before they kill a preempted job; Ctrl-C sends
SIGINT. During training either one asks the loop to finish the current step, write a
checkpoint and exit 3; during the end-of-run evaluation (``StopRequest.evaluating``) it stops
the evaluation at once (``metrics/progress.py``), the checkpoint being written already.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_CONFIG_ERROR = 2
EXIT_INTERRUPTED = 3
EXIT_DIVERGED = 4
EXIT_CTRL_C = 130  # 128 + SIGINT, as shells report a process that Ctrl-C ended
EXIT_SECOND_INTERRUPT = EXIT_CTRL_C


class Interrupted(Exception):
    """Raised by the loop after it saved a checkpoint in answer to a signal."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, signal_name: str, step: int, checkpoint, message: str | None = None):
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        super().__init__(
            message
            or f"stopped by {signal_name} at step {step}; checkpoint {checkpoint} "
            "(continue with resume=auto, or resume=<that file>)"
        )


class EvaluationInterrupted(Interrupted):
    """Raised by the loop after a signal stopped the end-of-run evaluation: the checkpoint was
    saved before it began, and ``metrics.json`` holds what finished (``"complete": false``)."""

    def __init__(self, signal_name: str, step: int, checkpoint, done: list[str], rest: list[str]):
        super().__init__(signal_name, step, checkpoint, evaluation_stopped_message(signal_name, done, checkpoint, rest))
        self.exit_code = EXIT_CTRL_C if signal_name == "SIGINT" else EXIT_INTERRUPTED


def evaluation_stopped_message(signal_name: str, done: list[str], checkpoint, rest: list[str]) -> str:
    """What a stopped evaluation says: what finished, that the checkpoint is saved, how to go on."""
    by = "Ctrl-C" if signal_name == "SIGINT" else signal_name
    after = f"after {', '.join(done)}" if done else "before its first metric"
    run_dir = Path(checkpoint).parent.parent
    again = " (or resume=auto evaluates the run again)" if signal_name != "SIGINT" else ""
    return (
        f"evaluation stopped by {by} {after}; the checkpoint {checkpoint} is saved; "
        f"`vaegan-eval {run_dir} metrics={','.join(rest)}` computes the rest{again}"
    )


class Diverged(Exception):
    """Non-finite values the run could not recover from; the last good checkpoint is kept."""


class StopRequest:
    """SIGTERM/SIGINT handlers that only raise a flag the loop checks after each step.

    Handlers can only be installed from the main thread (a launcher running jobs in threads
    keeps Python's defaults there).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_name: str | None = None
        # what signal.signal returned: the handler each signal had before
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | signal.Handlers | None] = {}
        self._evaluating: str | None = None  # what is saved already, while an evaluation runs
        self._interrupt: Callable[[str], None] = lambda name: None

    def evaluating(self, saved: str, interrupt: Callable[[str], None]) -> None:
        """From now on a signal stops an evaluation: ``interrupt(signal name)`` is called from the
        handler (``Progress.interrupt``, which raises there); ``saved``: what is safe already."""
        self._evaluating, self._interrupt = saved, interrupt

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            lost = "without a checkpoint" if self._evaluating is None else "without writing what was evaluated"
            print(f"\n{name} again: exiting now {lost}", file=sys.stderr, flush=True)
            os._exit(EXIT_SECOND_INTERRUPT)
        self.signal_name = name
        if self._evaluating is None:
            print(
                f"\n{name}: finishing this step and writing a checkpoint (send it again to exit at once)",
                file=sys.stderr,
                flush=True,
            )
            return
        print(f"\n{name}: stopping the evaluation ({self._evaluating})", file=sys.stderr, flush=True)
        self._interrupt(name)

    @property
    def requested(self) -> bool:
        return self.signal_name is not None
