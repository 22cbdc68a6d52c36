"""One optimiser step's gradient: micro-batches accumulated exactly like one big batch.

Each micro-batch contributes sum(loss) / global_count, so the accumulated gradient is the mean
over the global batch whatever the chunking (the reference code divides by the wrong count and,
through a shadowed loop variable, never actually accumulates). With W processes each adds
W x its share and the gradients are then averaged, which again gives the global mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import Trainee
from .regularizers import tau_jp_sum


@dataclass
class StepStats:
    """Sums over this process's examples; all-reduced over processes before logging."""

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    tau_jp_sum: float = 0.0
    penalty_count: float = 0.0

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.loss_sum, self.correct, self.count, self.tau_jp_sum, self.penalty_count], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> "StepStats":
        return cls(*(float(v) for v in t.tolist()))

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1.0)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1.0)

    @property
    def tau_jp(self) -> float:
        return self.tau_jp_sum / self.penalty_count if self.penalty_count else 0.0


def accumulate_gradients(
    trainee: Trainee,
    images: torch.Tensor,
    labels: torch.Tensor,
    micro_batch: int,
    global_count: int,
    world: int,
    penalty_inputs: torch.Tensor | None = None,
    global_penalty_count: int = 0,
    penalty_coef: float = 0.0,
) -> StepStats:
    """Backpropagate this process's share of one step's objective into the .grad fields.

    objective = mean cross-entropy over the global batch + penalty_coef * mean tau-Jp norm over
    the global penalty batch. The penalty rides on the first micro-batch.
    """
    # Running sums stay on the device: no host synchronisation inside the step.
    sums = torch.zeros(5, dtype=torch.float64, device=images.device)
    scale = world / global_count
    for start in range(0, images.shape[0], micro_batch):
        x, y = images[start : start + micro_batch], labels[start : start + micro_batch]
        pen_x = penalty_inputs if start == 0 else None
        features, tangent = trainee.forward(x, pen_x)
        logits = trainee.head(features)
        ce_sum = F.cross_entropy(logits, y, reduction="sum")
        objective = ce_sum * scale
        if tangent is not None:
            norm_sum = tau_jp_sum(tangent)
            objective = objective + penalty_coef * norm_sum * (world / global_penalty_count)
            sums[3] += norm_sum.detach()
            sums[4] += tangent.shape[0]
        objective.backward()
        sums[0] += ce_sum.detach()
        sums[1] += (logits.detach().argmax(dim=-1) == y).sum()
        sums[2] += y.shape[0]
    return StepStats.from_tensor(sums.cpu())
