"""Isotropic merging (Marczak et al., ICML 2025), FusionBench's ISO_C_Merge and ISO_CTS_Merge.

Iso-C, per 2-D weight matrix (not in exclude_keys): Delta = sum_t tau_t = U S V^T; every singular
value is replaced by their mean (a flat spectrum): U mean(S) V^T.

Iso-CTS adds task-specific directions: the top k_c directions of Delta form the common subspace,
k_c = r - round((r - int(r*common_space_fraction)) / T) * T (r = min side, T tasks); each task
contributes the top (r - k_c) / T directions of its tau_t with the common left subspace projected
out. The union of left (and of right) vectors is replaced by its nearest orthogonal matrix and
rebuilt with a flat spectrum at the mean of the kept singular values.

Other entries: the mean of the task vectors, in both. theta = theta_0 + scaling_factor * merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream, finite_number
from .subspace import check_exclude_keys, is_matrix, nearest_orthogonal, task_vectors_by_key


def iso_c_matrix(taus: Sequence[torch.Tensor]) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(torch.stack(list(taus)).sum(0), full_matrices=False)
    return s.mean() * (u @ vh)


def iso_cts_matrix(taus: Sequence[torch.Tensor], common_space_fraction: float) -> torch.Tensor:
    rank, tasks = min(taus[0].shape), len(taus)
    common = rank - round((rank - int(rank * common_space_fraction)) / tasks) * tasks
    per_task = (rank - common) // tasks
    u, s, vh = torch.linalg.svd(torch.stack(list(taus)).sum(0), full_matrices=False)
    u_c = u[:, :common]
    us, ss, vs = [u_c], [s[:common]], [vh[:common].T]
    for tau in taus:
        specific = tau - u_c @ (u_c.T @ tau)
        ut, st, vth = torch.linalg.svd(specific, full_matrices=False)
        us.append(ut[:, :per_task])
        ss.append(st[:per_task])
        vs.append(vth[:per_task].T)
    left = nearest_orthogonal(torch.cat(us, dim=1))
    right = nearest_orthogonal(torch.cat(vs, dim=1))
    return torch.cat(ss).mean() * (left @ right.T)


class _IsotropicMerge(MergeAlgorithm):
    def __init__(self, scaling_factor: float, exclude_keys: Sequence[str] | None, inplace: bool, **options: Any):
        super().__init__(inplace, **options)
        self.scaling_factor = finite_number("scaling_factor", scaling_factor)
        self.exclude_keys = list(exclude_keys or [])

    def merge_matrix(self, taus: Sequence[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        check_exclude_keys(stream, self.exclude_keys)
        merged = {}
        for key, taus in task_vectors_by_key(stream).items():
            merged[key] = self.merge_matrix(taus) if is_matrix(key, taus[0], self.exclude_keys) else torch.stack(taus).mean(0)
            merged[key].mul_(self.scaling_factor)
        return stream.plus_base(merged)


class ISO_C_Merge(_IsotropicMerge):  # noqa: N801 - FusionBench's class name
    def __init__(self, scaling_factor: float = 1.0, exclude_keys: Sequence[str] | None = None, inplace: bool = False, **options: Any):
        super().__init__(scaling_factor, exclude_keys, inplace, **options)

    def merge_matrix(self, taus: Sequence[torch.Tensor]) -> torch.Tensor:
        return iso_c_matrix(taus)


class ISO_CTS_Merge(_IsotropicMerge):  # noqa: N801 - FusionBench's class name
    def __init__(
        self,
        scaling_factor: float = 1.0,
        common_space_fraction: float = 0.8,
        exclude_keys: Sequence[str] | None = None,
        inplace: bool = False,
        **options: Any,
    ):
        super().__init__(scaling_factor, exclude_keys, inplace, **options)
        self.common_space_fraction = finite_number("common_space_fraction", common_space_fraction)
        if not 0 <= self.common_space_fraction <= 1:
            raise UserError(f"common_space_fraction must be in [0, 1], got {common_space_fraction}")

    def merge_matrix(self, taus: Sequence[torch.Tensor]) -> torch.Tensor:
        return iso_cts_matrix(taus, self.common_space_fraction)


# FusionBench's primary names; ISO_C_Merge and ISO_CTS_Merge are its aliases.
IsotropicMergingInCommonSubspace = ISO_C_Merge
IsotropicMergingInCommonAndTaskSubspace = ISO_CTS_Merge
