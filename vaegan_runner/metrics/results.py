"""What one evaluation produced: the values, what each was computed on, what did not run and why."""

from __future__ import annotations

from dataclasses import dataclass, field

STOPPED = "stopped"  # metrics_skipped's reason for the metrics a signal kept from running


@dataclass
class MetricResults:
    values: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int | str]] = field(default_factory=dict)  # what each value was computed on
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it did not run
    seconds: dict[str, float] = field(default_factory=dict)
    stopped_by: str | None = None  # the signal that stopped the evaluation (its other metrics: STOPPED)

    @property
    def complete(self) -> bool:
        """Whether every metric ran or was skipped for a reason of its own (no signal stopped it)."""
        return self.stopped_by is None
