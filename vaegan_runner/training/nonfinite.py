"""What a step with an inf or NaN does (``trainer.on_nonfinite``): stop, skip, or roll back.

Nothing non-finite ever reaches the weights: the phase runner raises ``NonFiniteStep`` before
any optimizer steps, and ``NonFinitePolicy.handle`` decides what happens next.
"""

from __future__ import annotations

from pathlib import Path

from .phase_runner import NonFiniteStep
from .stopping import Diverged


class NonFinitePolicy:
    """``handle`` skips the update, rolls back to the last checkpoint, or raises ``Diverged``.

    ``runner`` (a PhaseRunner) drops a skipped step's gradients; ``checkpoints`` (a
    RunCheckpoints) finds and restores the last good checkpoint; ``log`` (a RunLog) gets a
    warning for each skip and rollback. ``rollbacks`` counts the run's rollbacks so far (they
    travel in checkpoints).
    """

    def __init__(self, trainer, runner, checkpoints, log, rollbacks: int = 0):
        self.trainer, self.runner, self.checkpoints, self.log = trainer, runner, checkpoints, log
        self.rollbacks = rollbacks
        self.skipped_in_a_row = 0
        self.last_skipped: int | None = None

    def handle(self, bad: NonFiniteStep, step: int) -> int | None:
        """None: the update of ``step`` is skipped, go on with the next batch. A step: the
        live objects were rolled back to it, start the batches again from there."""
        trainer, policy = self.trainer, self.trainer.on_nonfinite
        last_good = self.checkpoints.last()
        if policy == "skip":
            in_a_row = self.skipped_in_a_row if self.last_skipped == step - 1 else 0  # a passing step ends a run
            if in_a_row < trainer.max_skips:
                self.skipped_in_a_row, self.last_skipped = in_a_row + 1, step
                self.runner.zero_grad()
                self.log.warning(f"{bad}; update skipped (trainer.on_nonfinite=skip)", step + 1)
                return None
        elif policy == "rollback" and self.rollbacks < trainer.max_rollbacks and last_good is not None:
            self.rollbacks += 1
            step = self.checkpoints.roll_back(last_good, trainer.rollback_lr_factor)
            self.log.restart(step)
            self.log.warning(
                f"{bad}; rolled back to {last_good.name} with the learning rates times "
                f"{trainer.rollback_lr_factor} (rollback {self.rollbacks} of "
                f"{trainer.max_rollbacks})",
                step,
            )
            return step
        self.log.close()
        raise Diverged(diverged_message(bad, policy, trainer, last_good)) from None


def diverged_message(bad: NonFiniteStep, policy: str, trainer, last_good: Path | None) -> str:
    reason = {
        "stop": "trainer.on_nonfinite=stop",
        "skip": f"{trainer.max_skips} steps in a row were skipped (trainer.max_skips)",
        "rollback": f"{trainer.max_rollbacks} rollbacks used (trainer.max_rollbacks)"
        if last_good is not None
        else "no checkpoint to roll back to",
    }[policy]
    remedies = "lower optimizer.lr, set trainer.grad_clip, or " + (
        "allow more rollbacks (trainer.max_rollbacks) with a smaller trainer.rollback_lr_factor"
        if policy == "rollback"
        else "try trainer.on_nonfinite=rollback"
    )
    if last_good is None:
        return (
            f"{bad}; stopping: {reason}. No checkpoint was written yet, so there is nothing to "
            f"resume (the run folder holds only its log and events): {remedies}, and start again"
        )
    return (
        f"{bad}; stopping: {reason}. Nothing non-finite reached the weights; the last good "
        f"checkpoint is {last_good}. To continue from it, {remedies}, and add "
        f"resume={last_good.parent.parent} to the same command (resume=auto looks for a run with "
        f"the changed settings and would start a fresh one)"
    )
