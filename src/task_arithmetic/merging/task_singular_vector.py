"""TSV-M, task singular vectors merging (Gargiulo et al., CVPR 2025), FusionBench's
TaskSingularVectorMerging(alpha, exclude_keys).

Per 2-D weight matrix (not in exclude_keys): the SVD of each tau_t keeps its top int(r/T)
singular triplets (r = min of the matrix's sides, T tasks); the kept left and right singular
vectors of all tasks are concatenated and each block replaced by its nearest orthogonal matrix
(decorrelating the tasks' subspaces), and the matrix is rebuilt with the kept singular values.
Other entries (biases, norms, excluded keys) are the mean of the task vectors.
theta = theta_0 + alpha * merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .base import MergeAlgorithm, TaskVectorStream, finite_number
from .subspace import check_exclude_keys, is_matrix, nearest_orthogonal, task_vectors_by_key


def tsv_merge_matrix(taus: Sequence[torch.Tensor]) -> torch.Tensor:
    keep = int(min(taus[0].shape) / len(taus))
    if keep == 0:
        return torch.zeros_like(taus[0])
    us, ss, vs = [], [], []
    for tau in taus:
        u, s, vh = torch.linalg.svd(tau, full_matrices=False)
        us.append(u[:, :keep])
        ss.append(s[:keep])
        vs.append(vh[:keep].T)
    u = nearest_orthogonal(torch.cat(us, dim=1))
    v = nearest_orthogonal(torch.cat(vs, dim=1))
    return (u * torch.cat(ss)) @ v.T


class TaskSingularVectorMerging(MergeAlgorithm):
    def __init__(self, alpha: float = 1.0, exclude_keys: Sequence[str] | None = None, inplace: bool = False, **options: Any):
        super().__init__(inplace, **options)
        self.alpha = finite_number("alpha", alpha)
        self.exclude_keys = list(exclude_keys or [])

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        check_exclude_keys(stream, self.exclude_keys)
        merged = {}
        for key, taus in task_vectors_by_key(stream).items():
            if is_matrix(key, taus[0], self.exclude_keys):
                merged[key] = tsv_merge_matrix(taus)
            else:
                merged[key] = torch.stack(taus).mean(0)
            merged[key].mul_(self.alpha)
        return stream.plus_base(merged)
