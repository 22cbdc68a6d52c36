"""Simple averaging of the fine-tuned models: theta = mean_i theta_i = theta_0 + mean_i tau_i.

The pre-trained model only anchors the computation; it is not one of the averaged models.
"""

from __future__ import annotations

import torch

from .base import MergeAlgorithm, TaskVectorStream


class SimpleAverageAlgorithm(MergeAlgorithm):
    def __init__(self, inplace: bool = False):
        super().__init__(inplace)

    def coefficients(self, names: list[str]) -> dict[str, float]:
        return {name: 1.0 / len(names) for name in names}

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        return stream.plus_base(stream.weighted_sum(self.coefficients(stream.names)))
