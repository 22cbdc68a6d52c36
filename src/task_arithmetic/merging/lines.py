"""LiNeS (Wang et al., ICLR 2025, "Post-training Layer Scaling Prevents Forgetting and Enhances
Model Merging"): the merged task vector scaled linearly with depth. Not in FusionBench.

Any merge (`base_method`, a method config or algorithm; task arithmetic at coefficient 1 by
default) gives tau_MTL = merged - theta_0. Then, entry by entry,

    theta = theta_0 + lambda(l) * tau_MTL,   lambda(l) = alpha + beta * l / (L - 1)

for an entry of block l (0-based) of the L transformer blocks (depth.py), and lambda = alpha
outside the blocks (embeddings, final norm, projection): shallow layers stay near theta_0, the
deepest get alpha + beta. For multi-task merging the authors' code sets
alpha = ||sum_t tau_t||_1 / (T ||tau_MTL||_1) (so 1/T for task arithmetic: the average's scale) and
chooses beta on validation data; `alpha` may also be given. `num_blocks` (L) is read from the keys
unless given (the authors hard-code 12 for ViT-B, 24 for ViT-L).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream, finite_number, integer, write_back
from .depth import block_count, block_index
from .modelpool.base import BaseModelPool, as_model_pool

DEFAULT_BASE = {"_target_": "TaskArithmeticAlgorithm", "scaling_factor": 1.0}


def layer_scale(key: str, alpha: float, beta: float, num_blocks: int) -> float:
    index = block_index(key)
    if index is None or num_blocks == 0:
        return alpha
    return alpha + beta * index / max(num_blocks - 1, 1)


def _base_algorithm(base_method: Any) -> MergeAlgorithm:
    if isinstance(base_method, MergeAlgorithm):
        return base_method
    if isinstance(base_method, Mapping):
        from .targets import instantiate

        return instantiate("method", dict(base_method))
    raise UserError(f"base_method must be a method config (a mapping with _target_) or an algorithm, got {base_method!r}")


class LiNeSAlgorithm(MergeAlgorithm):
    def __init__(self, base_method: Any = None, beta: float = 0.5, alpha: float | None = None, num_blocks: int | None = None, inplace: bool = False, **options: Any):
        super().__init__(inplace, **options)
        self._base = _base_algorithm(DEFAULT_BASE if base_method is None else base_method)
        if isinstance(self._base, LiNeSAlgorithm):
            raise UserError("base_method is LiNeS itself; give the merge whose task vector LiNeS rescales")
        self.base_method = {"_target_": type(self._base).__name__, **self._base.settings()}
        self.beta = finite_number("beta", beta)
        self.alpha = None if alpha is None else finite_number("alpha", alpha)
        self.num_blocks = None if num_blocks is None else integer("num_blocks", num_blocks)
        self._taskpool: Any = None
        self.alpha_used: float | None = None  # the alpha of the last run (computed when alpha is None)

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in super().settings().items() if k != "alpha_used"}

    def attach_taskpool(self, taskpool: Any) -> None:
        self._taskpool = taskpool
        self._base.attach_taskpool(taskpool)

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:  # pragma: no cover - run() is overridden
        raise NotImplementedError

    def run(self, modelpool: BaseModelPool | Mapping[str, nn.Module] | Sequence[nn.Module], inplace: bool | None = None) -> nn.Module:
        pool = as_model_pool(modelpool)
        if not pool.has_pretrained:
            raise UserError("LiNeS scales task vectors: the models need the pre-trained one under '_pretrained_'")
        merged = self._base.run(pool, inplace=False)  # a module of our own
        anchor = pool.load_pretrained_model()
        stream = TaskVectorStream(pool, anchor.state_dict())
        own = merged.state_dict()
        with torch.no_grad():
            self.alpha_used = self.alpha if self.alpha is not None else self._multi_task_alpha(stream, own)
            blocks = self.num_blocks if self.num_blocks is not None else block_count(stream.float_keys)
            for key in stream.float_keys:  # in place: theta_0 + lambda(key) * (merged - theta_0)
                base = stream.base[key].to(own[key].dtype)
                own[key].sub_(base).mul_(layer_scale(key, self.alpha_used, self.beta, blocks)).add_(base)
        if self.inplace if inplace is None else bool(inplace):
            write_back(anchor, {k: own[k] for k in stream.float_keys})
            return anchor
        return merged

    @staticmethod
    def _multi_task_alpha(stream: TaskVectorStream, merged: Mapping[str, torch.Tensor]) -> float:
        """||sum_t tau_t||_1 / (T ||tau_MTL||_1), the authors' multi-task choice (1/T for task arithmetic);
        both norms key by key (one key of every model in memory)."""
        norm_sum = sum(float(torch.stack(taus).sum(0).abs().sum(dtype=torch.float64)) for _key, taus in stream.per_key())
        norm_merged = sum(float((merged[k].to(stream.base[k].dtype) - stream.base[k]).abs().sum(dtype=torch.float64)) for k in stream.float_keys)
        if norm_merged == 0:
            raise UserError("the base merge equals theta_0 (its task vector is zero); LiNeS has nothing to scale, give alpha explicitly")
        return norm_sum / (len(stream.names) * norm_merged)
