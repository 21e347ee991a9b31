"""What an evaluation shows while it runs, and how a signal stops it.

The evaluation driver (``context.evaluate_metrics``) runs each metric inside
``Progress.metric``: a tqdm bar (``log.progress_bar``; without one, a log line when the metric
starts) and a log line when it ends, with its seconds (``metric iwae: 248.1 s``). The passes of
a metric over images count themselves through ``MetricContext.progress``: ``expect(n)`` before
a pass over n images, ``advance(n)`` after each batch.

A signal (Ctrl-C, SIGTERM: ``training/stopping.py``) calls ``interrupt``: inside a metric or
the cost estimate (``stoppable``) it raises ``EvaluationStopped`` at once, from the signal
handler, in whatever that was computing (as Python raises KeyboardInterrupt: a batch of the
IWAE bound can take many seconds); between metrics, the next one does not start. The driver then
keeps what finished and lists the rest as stopped. ``Progress()`` with no log (the evaluations
during training) shows nothing and is never stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm


class EvaluationStopped(BaseException):
    """A signal asked the evaluation to stop. Not an ``Exception`` (like KeyboardInterrupt): the
    ``except Exception`` of the code it interrupts (a cache file that fails to load) must not catch it."""

    def __init__(self, signal_name: str):
        self.signal_name = signal_name
        super().__init__(f"stopped by {signal_name}")


class Progress:
    """``log``: where the lines go (None: nowhere); ``bar``: a tqdm bar per metric instead of
    its start line; ``stop_signal``: the name of the signal that asked to stop, or None."""

    def __init__(
        self,
        log: Callable[[str], None] | None = None,
        bar: bool = False,
        stop_signal: Callable[[], str | None] = lambda: None,
    ):
        self.log, self.show_bar, self.stop_signal = log, bar and log is not None, stop_signal
        self._metric: str | None = None
        self._stoppable = False
        self._bar = None

    @property
    def shown(self) -> bool:
        """Whether anyone sees this evaluation (then the driver also says what it will cost)."""
        return self.log is not None

    def say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)

    def check(self) -> None:
        """Raise ``EvaluationStopped`` if a signal asked to stop."""
        signal_name = self.stop_signal()
        if signal_name is not None:
            raise EvaluationStopped(signal_name)

    def interrupt(self, signal_name: str) -> None:
        """Called by the signal handler: raises ``EvaluationStopped`` right there while a metric
        or the estimate runs; otherwise the next ``check`` stops the evaluation."""
        if self._stoppable:
            self._stoppable = False  # once
            raise EvaluationStopped(signal_name)

    @contextmanager
    def stoppable(self) -> Iterator[None]:
        """Where a signal may stop the evaluation at once (the work inside can be dropped)."""
        self.check()
        self._stoppable = True
        try:
            yield
        finally:
            self._stoppable = False

    @contextmanager
    def metric(self, name: str, about: str = "") -> Iterator[None]:
        """While metric ``name`` runs (``about``: its estimated cost, for the start line)."""
        self.check()
        if not self.show_bar:
            self.say(f"metric {name}: started{f' ({about})' if about else ''}")
        self._metric = name
        try:
            with self.stoppable():
                yield
        finally:
            self._metric = None
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def finished(self, name: str, seconds: float) -> None:
        self.say(f"metric {name}: {seconds:.1f} s")

    def expect(self, images: int) -> None:
        """A pass over ``images`` more images starts (the bar's total grows by as many)."""
        if not self.show_bar or self._metric is None:
            return
        if self._bar is None:
            self._bar = tqdm(total=images, desc=self._metric, unit="img", leave=False, dynamic_ncols=True)
        else:
            self._bar.total += images
            self._bar.refresh()

    def advance(self, images: int) -> None:
        """``images`` more are done; stops here when a signal asked to."""
        if self._bar is not None:
            self._bar.update(images)
        self.check()
