"""Task arithmetic (Ilharco et al., ICLR 2023): theta = theta_0 + lambda * sum_i tau_i."""

from __future__ import annotations

from typing import Any

import torch

from .base import MergeAlgorithm, TaskVectorStream, finite_number


class TaskArithmeticAlgorithm(MergeAlgorithm):
    def __init__(self, scaling_factor: float = 0.5, inplace: bool = False, **options: Any):
        super().__init__(inplace, **options)
        self.scaling_factor = finite_number("scaling_factor", scaling_factor)

    def coefficients(self, names: list[str]) -> dict[str, float]:
        return {name: self.scaling_factor for name in names}

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        return stream.plus_base(stream.weighted_sum(self.coefficients(stream.names)))
