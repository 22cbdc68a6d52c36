"""FusionBench's WeightedAverageAlgorithm: theta = sum_i w_i theta_i over the fine-tuned models.

`weights` are in pool order (one per fine-tuned model); `normalize=True` divides them by their sum
first. No pre-trained model is needed; when the pool has one it only anchors the stream:
sum_i w_i theta_i = (sum_i w_i) theta_0 + sum_i w_i tau_i. With inplace=True the merge is written
into the first fine-tuned model, as FusionBench does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream, finite_number
from .weighted_task_arithmetic import _is_vector


class WeightedAverageAlgorithm(MergeAlgorithm):
    requires_pretrained = False

    def __init__(self, normalize: bool = True, weights: Sequence[float] = (), verbose: bool = True, inplace: bool = False, **options: Any):
        super().__init__(inplace, verbose=verbose, **options)
        if not _is_vector(weights):
            raise UserError(f"weights must be a list with one weight per fine-tuned model, got {weights!r}")
        self.weights = [finite_number(f"weights[{i}]", w) for i, w in enumerate(list(weights))]
        self.normalize = bool(normalize)
        if self.normalize and self.weights and sum(self.weights) == 0:
            raise UserError("weights sum to 0 and cannot be normalized; pass other weights or normalize=false")

    def check_model_names(self, names: list[str]) -> None:
        if len(self.weights) != len(names):
            raise UserError(f"weights has {len(self.weights)} values for {len(names)} models ({', '.join(names)}); give one per model")

    def effective_weights(self) -> list[float]:
        total = sum(self.weights)
        return [w / total for w in self.weights] if self.normalize else list(self.weights)

    def inplace_target(self, anchor_name: str, names: list[str]) -> str:
        return names[0]

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        weights = self.effective_weights()
        delta = stream.weighted_sum(dict(zip(stream.names, weights)))
        return stream.plus_base(delta, scale=sum(weights))
