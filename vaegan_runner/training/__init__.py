"""The training machinery: the loop, the phase runner, optimizers and schedules, checkpoints
and resume, snapshots and run records. Nothing here names a model family."""
