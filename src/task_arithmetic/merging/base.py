"""The one base class of merging algorithms.

An algorithm sees the pre-trained weights theta_0 and a stream of task vectors tau_i = theta_i -
theta_0, one fine-tuned model at a time, key by key: peak memory is the pre-trained model, the
algorithm's accumulators and one tensor of one fine-tuned model, whatever the number of models.

Every floating-point entry of the state dict (parameters and float buffers) is merged, computed in
float32 (float64 stays float64) and written back in the model's own dtype. Other entries (integer
buffers such as BatchNorm's num_batches_tracked or HF's position_ids) keep the pre-trained values.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .modelpool.base import PRETRAINED, BaseModelPool, as_model_pool
from ..state_dicts import state_mismatch

# (model name, state key, task vector) -> task vector; DARE plugs in here.
TaskVectorTransform = Callable[[str, str, torch.Tensor], torch.Tensor]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def finite_number(name: str, value: Any) -> float:
    """A coefficient from a config or a caller: a real, finite number, else a UserError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value!r}; pass e.g. {name}=0.3")
    return float(value)


@dataclass
class TaskVectorStream:
    """Reads the fine-tuned models of a pool one at a time and yields their task vectors."""

    pool: BaseModelPool
    base: Mapping[str, torch.Tensor]
    transform: TaskVectorTransform | None = None
    names: list[str] = field(init=False)
    float_keys: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.names = list(self.pool.model_names)
        self.float_keys = [k for k, t in self.base.items() if t.is_floating_point()]

    def task_vector(self, name: str, keys: Sequence[str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
        """(key, tau) for the float keys (or `keys`), in the accumulation dtype, on theta_0's device."""
        state = self.pool.load_state(name)
        problem = state_mismatch(self.base, state)
        if problem:
            raise UserError(
                f"model '{name}' does not match the pre-trained model '{PRETRAINED}': {problem}; "
                "every model must have the pre-trained model's architecture"
            )
        for key in self.float_keys if keys is None else keys:
            base = self.base[key]
            dtype = accumulation_dtype(base.dtype)
            tau = state[key].to(device=base.device, dtype=dtype) - base.to(dtype)
            yield key, (self.transform(name, key, tau) if self.transform else tau)

    def weighted_sum(self, coefficients: Mapping[str, float]) -> dict[str, torch.Tensor]:
        """sum_i c_i * tau_i over the float keys, accumulated in float32."""
        total: dict[str, torch.Tensor] = {}
        for name in self.names:
            for key, tau in self.task_vector(name):
                if key in total:
                    total[key].add_(tau, alpha=coefficients[name])
                else:
                    total[key] = tau.mul_(coefficients[name])
        return total

    def plus_base(self, delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """theta_0 + delta, computed in place in `delta`'s tensors."""
        for key, value in delta.items():
            value.add_(self.base[key].to(value.dtype))
        return delta


class MergeAlgorithm(ABC):
    """`run(models)` merges a dict of modules (with '_pretrained_') or a model pool into a NEW module.

    The caller's modules are left untouched unless `inplace=True`, in which case the pre-trained
    module itself receives the merged weights (FusionBench's behaviour) and is returned.
    """

    def __init__(self, inplace: bool = False):
        self.inplace = bool(inplace)

    def config(self) -> dict[str, Any]:
        """The algorithm's settings, for reports and file names."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def run(self, modelpool: BaseModelPool | Mapping[str, nn.Module], inplace: bool | None = None) -> nn.Module:
        pool = as_model_pool(modelpool)
        if not pool.has_pretrained:
            raise UserError(
                f"the models have no '{PRETRAINED}' entry; add the pre-trained model under the key '{PRETRAINED}' "
                "(task vectors are differences from it)"
            )
        if not pool.model_names:
            raise UserError(f"nothing to merge: the models hold only '{PRETRAINED}'; add at least one fine-tuned model")
        self.check_model_names(list(pool.model_names))
        pretrained = pool.load_pretrained_model()
        self.prepare(pretrained)
        stream = TaskVectorStream(pool, pretrained.state_dict(), self.transform_task_vector)
        with torch.no_grad():
            merged = self.merge(stream)
        in_place = self.inplace if inplace is None else bool(inplace)
        # A pool that loads from disk hands out fresh modules nobody else holds: no copy needed.
        target = pretrained if in_place or pool.fresh_models else copy.deepcopy(pretrained)
        write_back(target, merged)
        return target

    def check_model_names(self, names: list[str]) -> None:
        """Hook: validate settings that depend on the model names (per-task coefficients)."""

    def prepare(self, pretrained: nn.Module) -> None:
        """Hook: look at the pre-trained module's structure before merging (DARE's linear-only mode)."""

    def transform_task_vector(self, name: str, key: str, tau: torch.Tensor) -> torch.Tensor:
        return tau

    @abstractmethod
    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        """Merged values for the float keys that change (others keep theta_0)."""


@torch.no_grad()
def write_back(target: nn.Module, merged: dict[str, torch.Tensor]) -> None:
    """Copy merged values into `target`, casting to each entry's dtype and freeing them as it goes."""
    own = target.state_dict()
    for key in list(merged):
        own[key].copy_(merged.pop(key))
