"""TSV-M, task singular vectors merging (Gargiulo et al., CVPR 2025), FusionBench's
TaskSingularVectorMerging(alpha, exclude_keys, return_single_task_models).

Per 2-D weight matrix (not in exclude_keys): the SVD of each tau_t keeps its top int(r/T)
singular triplets (r = min of the matrix's sides, T tasks); the kept left and right singular
vectors of all tasks are concatenated and each block replaced by its nearest orthogonal matrix
(decorrelating the tasks' subspaces), and the matrix is rebuilt with the kept singular values.
Other entries (biases, norms, excluded keys) are the mean of the task vectors.

`alpha`, as FusionBench reads it: a number scales the merged update (theta = theta_0 + alpha *
merged); a list (one per model, pool order) scales each task vector before the SVDs; None is 1.
`return_single_task_models`: run() returns {model name: theta_0 + its own decorrelated part,
..., "merged": the merge} (the single-task parts are not scaled by a numeric alpha, as in
FusionBench).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream, finite_number, write_back
from .modelpool.base import BaseModelPool, as_model_pool
from .subspace import check_exclude_keys, is_matrix, nearest_orthogonal, task_vectors_by_key


def _decorrelated(taus: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, int]:
    """(U, [kept singular values per task], V, kept per task): the tasks' top triplets with the
    concatenated U and V replaced by their nearest orthogonal matrices."""
    keep = int(min(taus[0].shape) / len(taus))
    us, ss, vs = [], [], []
    for tau in taus:
        u, s, vh = torch.linalg.svd(tau, full_matrices=False)
        us.append(u[:, :keep])
        ss.append(s[:keep])
        vs.append(vh[:keep].T)
    return nearest_orthogonal(torch.cat(us, dim=1)), ss, nearest_orthogonal(torch.cat(vs, dim=1)), keep


def tsv_merge_matrix(taus: Sequence[torch.Tensor]) -> torch.Tensor:
    if int(min(taus[0].shape) / len(taus)) == 0:
        return torch.zeros_like(taus[0])
    u, ss, v, _keep = _decorrelated(taus)
    return (u * torch.cat(ss)) @ v.T


def tsv_parts(taus: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each task's decorrelated part (FusionBench's single-task models); they sum to the merge."""
    if int(min(taus[0].shape) / len(taus)) == 0:
        return [torch.zeros_like(taus[0]) for _ in taus]
    u, ss, v, keep = _decorrelated(taus)
    return [(u[:, i * keep : (i + 1) * keep] * s) @ v[:, i * keep : (i + 1) * keep].T for i, s in enumerate(ss)]


def _alpha(value: Any) -> float | list[float]:
    if value is None:
        return 1.0
    if isinstance(value, (list, tuple, np.ndarray)) or (isinstance(value, torch.Tensor) and value.ndim == 1):
        values = [finite_number(f"alpha[{i}]", v) for i, v in enumerate(list(value))]
        if not values:
            raise UserError("alpha is an empty list; give one number, or one per model")
        return values
    return finite_number("alpha", value)


class TaskSingularVectorMerging(MergeAlgorithm):
    def __init__(
        self,
        alpha: float | Sequence[float] | None = 1.0,
        exclude_keys: Sequence[str] | None = None,
        return_single_task_models: bool = False,
        inplace: bool = False,
        **options: Any,
    ):
        super().__init__(inplace, **options)
        self.alpha = _alpha(alpha)
        self.exclude_keys = list(exclude_keys or [])
        self.return_single_task_models = bool(return_single_task_models)
        self._parts: dict[str, dict[str, torch.Tensor]] | None = None

    def check_model_names(self, names: list[str]) -> None:
        if isinstance(self.alpha, list) and len(self.alpha) != len(names):
            raise UserError(f"alpha has {len(self.alpha)} values for {len(names)} models ({', '.join(names)}); give one per model, or one number")

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        check_exclude_keys(stream, self.exclude_keys)
        keep_parts = self.return_single_task_models
        parts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in stream.names}
        merged = {}
        for key, taus in task_vectors_by_key(stream).items():
            if isinstance(self.alpha, list):  # one alpha per task
                taus = [tau * a for tau, a in zip(taus, self.alpha)]
            if is_matrix(key, taus[0], self.exclude_keys):
                if keep_parts:
                    pieces = tsv_parts(taus)
                    merged[key] = torch.stack(pieces).sum(0)
                    for name, piece in zip(stream.names, pieces):
                        parts[name][key] = piece
                else:
                    merged[key] = tsv_merge_matrix(taus)
            else:
                merged[key] = torch.stack(taus).mean(0)
                for name in stream.names if keep_parts else ():
                    parts[name][key] = merged[key].clone()
            if not isinstance(self.alpha, list):
                merged[key].mul_(self.alpha)
        self._parts = {name: stream.plus_base(p) for name, p in parts.items()} if keep_parts else None
        return stream.plus_base(merged)

    def run(self, modelpool: BaseModelPool | Mapping[str, nn.Module] | Sequence[nn.Module], inplace: bool | None = None) -> Any:
        pool = as_model_pool(modelpool)
        if not self.return_single_task_models:
            return super().run(pool, inplace)
        theta0 = copy.deepcopy(pool.load_pretrained_model()) if pool.has_pretrained else None
        merged = super().run(pool, inplace)
        assert theta0 is not None  # super().run refuses a pool without theta_0 (task vectors need it)
        models = {}
        for name, state in (self._parts or {}).items():
            model = copy.deepcopy(theta0)
            write_back(model, state)
            models[name] = model
        self._parts = None
        return {**models, "merged": merged}
