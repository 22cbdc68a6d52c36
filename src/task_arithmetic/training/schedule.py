"""Learning-rate schedule: linear warm-up, then cosine decay to zero.

A pure function of the step, so resuming needs no scheduler object: the step count is the state.
"""

from __future__ import annotations

import math


def learning_rate(step: int, base_lr: float, warmup: int, total_steps: int) -> float:
    """Learning rate for the optimiser step with 0-based index `step`."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    decay_steps = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress)) * base_lr
