"""The tau-Jp regulariser (Yoshida et al. 2025):

    penalty_coef * mean_x || J_theta0 f(x) . (theta - theta_0) ||_2

over inputs x of OTHER tasks (labels unused); f is the embedding before normalisation and the
norm is not squared. Which tasks feed a step depends on the variant:
  strict     every penalty task every step (one batch each, averaged);
  efficient  one penalty task per step, round-robin (the default);
  continual  only tasks learned earlier in --task-order, round-robin like efficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch.utils.data import Dataset

from .data import PenaltyStream, draws_before, stack_nonempty


def tasks_for_step(variant: str, step: int, n_tasks: int) -> list[int]:
    """Indices (into the penalty task list) whose inputs feed the penalty at optimiser step `step`."""
    if variant == "strict":
        return list(range(n_tasks))
    return [step % n_tasks]


def draws_done(variant: str, step: int, slot: int, n_tasks: int) -> int:
    """Penalty batches task `slot` has supplied before `step`: where its stream resumes."""
    return step if variant == "strict" else draws_before(step, slot, n_tasks)


def tau_jp_sum(tangent: torch.Tensor) -> torch.Tensor:
    """Sum over inputs of ||J f(x) . delta||_2 (callers divide by the global input count)."""
    return torch.linalg.vector_norm(tangent.flatten(1), dim=1).sum()


@dataclass
class PenaltySource:
    """Serves each step's penalty inputs for this process, deterministically by step."""

    variant: str
    streams: list[PenaltyStream]
    batch: int  # global inputs per task per step

    @classmethod
    def create(
        cls, variant: str, datasets: Sequence[Dataset], batch: int, seed: int, start_step: int, rank: int, world: int, num_workers: int
    ) -> "PenaltySource":
        n = len(datasets)
        streams = [
            PenaltyStream(ds, batch, seed=seed + 7919 * (slot + 1), start_draw=draws_done(variant, start_step, slot, n),
                          rank=rank, world=world, num_workers=num_workers)
            for slot, ds in enumerate(datasets)
        ]
        return cls(variant, streams, batch)

    def inputs_for_step(self, step: int) -> tuple[torch.Tensor | None, int]:
        """(this process's penalty inputs, global number of penalty inputs) for optimiser step `step`."""
        slots = tasks_for_step(self.variant, step, len(self.streams))
        return stack_nonempty([self.streams[s].next_inputs() for s in slots]), self.batch * len(slots)
