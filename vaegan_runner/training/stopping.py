"""Ways a run ends early, each with its own exit code, and the signal handling behind them.

    0  finished
    1  a crash (a Python traceback)
    2  a config or input error, before any work (``ConfigError``)
    3  stopped by SIGTERM or SIGINT after writing a checkpoint (resume with ``resume=auto``)
    4  training diverged: a non-finite loss or gradient (``trainer.on_nonfinite``)
  130  a second Ctrl-C: exit at once, no checkpoint (the previous one is intact)

Cluster schedulers send SIGTERM some time before they kill a preempted job; Ctrl-C sends
SIGINT. Either one asks the loop to finish the current step, write a checkpoint and exit 3.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

EXIT_CONFIG_ERROR = 2
EXIT_INTERRUPTED = 3
EXIT_DIVERGED = 4
EXIT_SECOND_INTERRUPT = 130


class Interrupted(Exception):
    """Raised by the loop after it saved a checkpoint in answer to a signal."""

    def __init__(self, signal_name: str, step: int, checkpoint):
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        super().__init__(
            f"stopped by {signal_name} at step {step}; checkpoint {checkpoint} "
            "(continue with resume=auto, or resume=<that file>)"
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
        self._previous: dict[int, object] = {}

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
            print(f"\n{name} again: exiting now without a checkpoint", file=sys.stderr, flush=True)
            os._exit(EXIT_SECOND_INTERRUPT)
        self.signal_name = name
        print(
            f"\n{name}: finishing this step and writing a checkpoint (send it again to exit at once)",
            file=sys.stderr,
            flush=True,
        )

    @property
    def requested(self) -> bool:
        return self.signal_name is not None
