"""Shared pieces of the SVD-based methods (TSV-M, Iso-C, Iso-CTS): which entries are matrices,
the nearest orthogonal matrix, and all task vectors of one key at once.

These methods need every task's tensor of a key together, so they hold the task vectors of all
models (T model-sized copies), as FusionBench does; the streamed methods do not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import TaskVectorStream


def is_matrix(key: str, tensor: torch.Tensor, exclude_keys: Sequence[str]) -> bool:
    return tensor.ndim == 2 and key not in exclude_keys


def nearest_orthogonal(matrix: torch.Tensor) -> torch.Tensor:
    """The polar factor P Q^T of matrix = P S Q^T: the closest matrix with orthonormal columns."""
    p, _s, qh = torch.linalg.svd(matrix, full_matrices=False)
    return p @ qh


def task_vectors_by_key(stream: TaskVectorStream) -> dict[str, list[torch.Tensor]]:
    """{key: [tau_t for each model, in pool order]} over the float keys."""
    out: dict[str, list[torch.Tensor]] = {}
    for name in stream.names:
        for key, tau in stream.task_vector(name):
            out.setdefault(key, []).append(tau)
    return out


def check_exclude_keys(stream: TaskVectorStream, exclude_keys: Sequence[str]) -> None:
    from ..errors import UserError

    unknown = [k for k in exclude_keys if k not in stream.base]
    if unknown:
        raise UserError(f"exclude_keys names keys the model does not have (e.g. '{unknown[0]}'); use state_dict key names")
