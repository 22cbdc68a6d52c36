"""One optimiser step, top to bottom (`train_step`), and its exact micro-batch gradient.

Each micro-batch contributes sum(loss) / global_count, so the accumulated gradient is the mean
over the global batch whatever the chunking (the reference code divides by the wrong count and,
through a shadowed loop variable, never actually accumulates). With W processes each adds
W x its share and the gradients are then averaged, which again gives the global mean.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..precision import Precision, autocast
from ..recipes.base import Penalty, PenaltyInputs, UpdateRule
from .distributed import DistContext, average_gradients, sum_over_processes
from .model import Trainee
from .schedule import learning_rate


class TrainingDiverged(UserError):
    """The loss or gradient became NaN/inf; the last saved state is left untouched."""


class NonFiniteStep(TrainingDiverged):
    """A non-finite loss, penalty or gradient norm, found before the update (the loop adds where
    it happened and which state is kept)."""


@dataclass
class StepStats:
    """Sums over this process's examples; all-reduced over processes before logging.

    `metrics` holds the penalty's metrics as name -> (sum, count), in the order of Penalty.metrics.
    """

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    metrics: dict[str, tuple[float, float]] = field(default_factory=dict)

    def as_tensor(self) -> torch.Tensor:
        pairs = [v for pair in self.metrics.values() for v in pair]
        return torch.tensor([self.loss_sum, self.correct, self.count, *pairs], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor, names: tuple[str, ...]) -> "StepStats":
        values = [float(v) for v in t.tolist()]
        metrics = {name: (values[3 + 2 * i], values[4 + 2 * i]) for i, name in enumerate(names)}
        return cls(values[0], values[1], values[2], metrics)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1.0)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1.0)

    def metric_means(self) -> dict[str, float]:
        return {name: (s / c if c else 0.0) for name, (s, c) in self.metrics.items()}


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
    names = penalty.metrics if penalty is not None else ()
    # Running sums stay on the device: no host synchronisation inside the step.
    sums = torch.zeros(3 + 2 * len(names), dtype=torch.float64, device=images.device)
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
                term = penalty.term(trainee, tangent, penalty_inputs, world)
                objective = objective + term.value
                for i, name in enumerate(names):
                    sums[3 + 2 * i] += term.metrics[name].total
                    sums[4 + 2 * i] += term.metrics[name].count
        objective.backward()
        sums[0] += ce_sum.detach()
        sums[1] += (logits.detach().argmax(dim=-1) == y).sum()
        sums[2] += y.shape[0]
    return StepStats.from_tensor(sums.cpu(), names)


@dataclass(frozen=True)
class StepSchedule:
    """What one step needs to know about the run beyond the model and its data."""

    lr: float
    warmup: int
    total_steps: int
    clip: float  # 0: no clipping
    micro_batch: int
    reg: str  # for messages
    precision: Precision = Precision.FP32  # bf16: autocast around the forward, loss and penalty


def train_step(
    trainee: Trainee,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    rule: UpdateRule,
    penalty: Penalty | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    step: int,
    schedule: StepSchedule,
    ctx: DistContext,
    device: torch.device,
    stop_requested: bool,
) -> tuple[dict[str, Any], bool]:
    """Optimiser step `step` (0-based) on this batch; returns (the logged record, stop now?)."""
    # 1. the inputs: this batch, and the penalty's inputs of other tasks if it wants them
    images = images.to(device, non_blocking=True)
    labels = torch.as_tensor(labels).to(device, non_blocking=True)
    pen_inputs = penalty.inputs_for_step(step) if penalty is not None else None
    if pen_inputs is not None and pen_inputs.inputs is not None:
        pen_inputs.inputs = pen_inputs.inputs.to(device, non_blocking=True)

    # 2. the gradient of the objective, averaged over processes, shaped by the mode
    optimizer.zero_grad(set_to_none=True)
    local = accumulate_gradients(
        trainee, images, labels, schedule.micro_batch, global_count=images.shape[0] * ctx.world, world=ctx.world,
        penalty=penalty, penalty_inputs=pen_inputs, precision=schedule.precision,
    )
    average_gradients(params, ctx)
    rule.after_backward()

    # 3. the step's statistics over all processes; one small reduction also carries the stop
    # request, so every process stops after the same step
    reduced = sum_over_processes(torch.cat([local.as_tensor(), torch.tensor([float(stop_requested)], dtype=torch.float64)]), ctx, device)
    stats = StepStats.from_tensor(reduced[:-1], tuple(local.metrics))
    stop_now = bool(reduced[-1] > 0)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, schedule.clip if schedule.clip > 0 else math.inf))
    means = stats.metric_means()
    logged = penalty.record(means) if penalty is not None else {}

    # 4. nothing non-finite goes into the weights
    checked = (("loss", stats.loss), (f"{schedule.reg} penalty", logged.get("penalty", 0.0)), ("gradient norm", grad_norm))
    bad = [(name, value) for name, value in checked if not math.isfinite(value)]
    if bad:
        raise NonFiniteStep(f"training diverged: the {bad[0][0]} is {bad[0][1]} at step {step + 1}")

    # 5. the update, then what the mode and the penalty do after it
    lr = learning_rate(step, schedule.lr, schedule.warmup, schedule.total_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    try:
        optimizer.step()
    except RuntimeError as err:
        if "overflow" not in str(err):
            raise
        raise TrainingDiverged(f"training diverged: the optimiser update overflowed at step {step + 1} (--lr {schedule.lr:g}); lower --lr (the paper uses 1e-5)") from err
    rule.after_step()
    if penalty is not None:
        penalty.after_step(means)

    record: dict[str, Any] = {
        "step": step + 1, "lr": lr, "loss": stats.loss, "acc": stats.accuracy, "grad_norm": grad_norm, "time": time.time(), **logged,
    }
    return record, stop_now
