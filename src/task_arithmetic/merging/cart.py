"""CART (Choi et al., 2024, "Revisiting Weight Averaging for Model Merging": Centered Arithmetic with
Rank-reduced Task vectors). Not in FusionBench.

Weight averaging is task arithmetic centred on the average: theta_avg = theta_0 + mean_t tau_t and
the centred task vectors theta_t - theta_avg sum to zero. CART keeps, per weight matrix of the
transformer blocks (the authors' code: the attention and MLP matrices; depth.py), the top
k = max(1, int(rank_ratio * min(rows, cols))) singular triplets of each centred matrix
(rank_ratio 0 keeps none, 1 all) and adds them back:

    theta = theta_avg + scaling_factor * sum_t SVD_k(theta_t - theta_avg)

Every other entry (embeddings, norms, biases, the projection, exclude_keys) is theta_avg: its
centred vectors, kept whole, sum to zero. The authors report rank ~8 % as best for ViT-B/32 and
choose scaling_factor (their `prior`) on validation data; 1.0 (each task's own top directions
restored at full strength) is our default.

Keys are read one at a time from every model: memory is theta_0, the merge and one key of each model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream, finite_number
from .depth import block_index
from .subspace import check_exclude_keys


def low_rank_sum(centred: Sequence[torch.Tensor], rank_ratio: float) -> torch.Tensor:
    """sum_t of the best rank-k approximation of each centred matrix (k from rank_ratio)."""
    full = min(centred[0].shape)
    keep = 0 if rank_ratio == 0 else full if rank_ratio == 1 else max(1, int(rank_ratio * full))
    total = torch.zeros_like(centred[0])
    if keep == 0:
        return total
    for matrix in centred:
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        total += (u[:, :keep] * s[:keep]) @ vh[:keep]
    return total


class CARTMerging(MergeAlgorithm):
    def __init__(self, scaling_factor: float = 1.0, rank_ratio: float = 0.08, exclude_keys: Sequence[str] | None = None, inplace: bool = False, **options: Any):
        super().__init__(inplace, **options)
        self.scaling_factor = finite_number("scaling_factor", scaling_factor)
        self.rank_ratio = finite_number("rank_ratio", rank_ratio)
        if not 0 <= self.rank_ratio <= 1:
            raise UserError(f"rank_ratio is the fraction of each matrix's rank kept and must be in [0, 1], got {rank_ratio}")
        self.exclude_keys = list(exclude_keys or [])

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        check_exclude_keys(stream, self.exclude_keys)
        merged = {}
        for key, taus in stream.per_key():
            mean = torch.stack(taus).mean(0)
            if mean.ndim == 2 and block_index(key) is not None and key not in self.exclude_keys:
                mean += self.scaling_factor * low_rank_sum([tau - mean for tau in taus], self.rank_ratio)
            merged[key] = mean
        return stream.plus_base(merged)
