"""One optimiser step's gradient: micro-batches accumulated exactly like one big batch.

Each micro-batch contributes sum(loss) / global_count, so the accumulated gradient is the mean
over the global batch whatever the chunking (the reference code divides by the wrong count and,
through a shadowed loop variable, never actually accumulates). With W processes each adds
W x its share and the gradients are then averaged, which again gives the global mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..precision import Precision, autocast
from ..recipes.base import Penalty, PenaltyInputs
from .model import Trainee


@dataclass
class StepStats:
    """Sums over this process's examples; all-reduced over processes before logging.

    `extra` holds the penalty's metrics as (sum, count) pairs, in the order of Penalty.metrics.
    """

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    extra: tuple[float, ...] = field(default_factory=tuple)

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.loss_sum, self.correct, self.count, *self.extra], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> "StepStats":
        values = [float(v) for v in t.tolist()]
        return cls(values[0], values[1], values[2], tuple(values[3:]))

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1.0)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1.0)

    def metric_means(self, names: tuple[str, ...]) -> dict[str, float]:
        pairs = [self.extra[2 * i : 2 * i + 2] for i in range(len(names))]
        return {name: (s / c if c else 0.0) for name, (s, c) in zip(names, pairs)}


def accumulate_gradients(
    trainee: Trainee,
    images: torch.Tensor,
    labels: torch.Tensor,
    micro_batch: int,
    global_count: int,
    world: int,
    penalty: Penalty | None = None,
    penalty_inputs: PenaltyInputs | None = None,
    precision: Precision = Precision.FP32,
) -> StepStats:
    """Backpropagate this process's share of one step's objective into the .grad fields.

    objective = mean cross-entropy over the global batch + the penalty's term (for tau-Jp:
    coef x mean tau-Jp norm over the global penalty batch). The penalty rides on the first
    micro-batch, sharing its JVP when the penalty needs one. Under bf16 the forward, the loss
    and the penalty run in autocast; the backward runs outside it, as torch recommends.
    """
    # Running sums stay on the device: no host synchronisation inside the step.
    n_extra = 2 * len(penalty.metrics) if penalty is not None else 0
    sums = torch.zeros(3 + n_extra, dtype=torch.float64, device=images.device)
    scale = world / global_count
    for start in range(0, images.shape[0], micro_batch):
        x, y = images[start : start + micro_batch], labels[start : start + micro_batch]
        first = start == 0
        pen_x = penalty_inputs.inputs if (first and penalty_inputs is not None) else None
        with autocast(precision, images.device):
            features, tangent = trainee.forward(x, pen_x)
            logits = trainee.head(features)
            ce_sum = F.cross_entropy(logits, y, reduction="sum")
            objective = ce_sum * scale
            if first and penalty is not None:
                term, metric_sums = penalty.term(trainee, tangent, penalty_inputs, world)
                objective = objective + term
                sums[3:] += metric_sums
        objective.backward()
        sums[0] += ce_sum.detach()
        sums[1] += (logits.detach().argmax(dim=-1) == y).sum()
        sums[2] += y.shape[0]
    return StepStats.from_tensor(sums.cpu())
