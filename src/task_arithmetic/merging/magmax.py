"""MagMax (Marczak et al., ECCV 2024), FusionBench's MagMaxAlgorithm(scaling_factor, inplace).

Per entry, the task-vector value of largest magnitude across the models; on equal magnitudes the
later model wins (the released code's `>=`, which FusionBench keeps).
theta = theta_0 + scaling_factor * tau_max. Streamed: theta_0, the running selection and one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .base import MergeAlgorithm, TaskVectorStream, finite_number
from .modelpool.base import PRETRAINED


class MagMaxAlgorithm(MergeAlgorithm):
    # FusionBench's config default is scaling_factor 0.5 (the released 8-task script's coefficient).
    def __init__(self, scaling_factor: float = 0.5, inplace: bool = False, **options: Any):
        super().__init__(inplace, **options)
        self.scaling_factor = finite_number("scaling_factor", scaling_factor)

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        selected: dict[str, torch.Tensor] = {}
        for name in stream.names:
            for key, tau in stream.task_vector(name):
                if key in selected:
                    current = selected[key]
                    # Ties go to the later model, as in the reference implementation.
                    selected[key] = torch.where(tau.abs() >= current.abs(), tau, current)
                else:
                    selected[key] = tau
        for value in selected.values():
            value.mul_(self.scaling_factor)
        return stream.plus_base(selected)


def magmax_merge(pretrained_model: nn.Module, finetuned_models: Sequence[nn.Module], scaling_factor: float = 1.0, inplace: bool = True) -> nn.Module:
    """FusionBench's functional form: MagMax of `finetuned_models` around `pretrained_model`."""
    models = {PRETRAINED: pretrained_model, **{f"model_{i}": m for i, m in enumerate(finetuned_models)}}
    return MagMaxAlgorithm(scaling_factor=scaling_factor, inplace=inplace).run(models)
