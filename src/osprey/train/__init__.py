"""Training: stages, loop, checkpoints, distributed launch."""
