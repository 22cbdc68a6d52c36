"""What one run cost, measured as it trains and recorded with its weights (reporting/analyses/cost.py
compares the recipes): seconds per optimiser step, images per second, the set-up the recipe needs
before its first step (e.g. TAK's curvature, TaLoS's calibration) and the peak memory."""

from __future__ import annotations

import resource
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

import torch


def peak_memory_mb(device: torch.device) -> float:
    """The accelerator's peak allocated memory on CUDA; the process's peak resident memory on CPU
    (everything the process held: the model, its data, the frozen theta_0 copy)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


@dataclass
class CostMeter:
    setup_seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)

    def summary(self, images_per_step: int, device: torch.device) -> dict[str, Any]:
        # the first step pays one-off costs (allocations, kernel choice): left out once there are others
        steady = self.step_seconds[1:] if len(self.step_seconds) > 2 else self.step_seconds
        per_step = statistics.median(steady) if steady else None
        return {
            "seconds_per_step": per_step,
            "images_per_second": images_per_step / per_step if per_step else None,
            "setup_seconds": self.setup_seconds,
            "steps_measured": len(steady),
            "peak_memory_mb": peak_memory_mb(device),
            "device": str(device),
        }
