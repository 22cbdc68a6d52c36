"""Simple averaging of the fine-tuned models: theta = mean_i theta_i (= theta_0 + mean_i tau_i).

The pre-trained model, when there is one, only anchors the computation; it is not one of the
averaged models, and a plain list of modules needs none. Signature as FusionBench's:
SimpleAverageAlgorithm(show_pbar=False, inplace=...); with inplace=True the merge is written into
the first fine-tuned model, as FusionBench does.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import MergeAlgorithm, TaskVectorStream


class SimpleAverageAlgorithm(MergeAlgorithm):
    requires_pretrained = False

    def __init__(self, show_pbar: bool = False, inplace: bool = False, **options: Any):
        super().__init__(inplace, show_pbar=show_pbar, **options)

    def coefficients(self, names: list[str]) -> dict[str, float]:
        return {name: 1.0 / len(names) for name in names}

    def inplace_target(self, anchor_name: str, names: list[str]) -> str:
        return names[0]

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        return stream.plus_base(stream.weighted_sum(self.coefficients(stream.names)))
