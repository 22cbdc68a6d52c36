"""The one base class of merging algorithms.

An algorithm sees the pre-trained weights theta_0 and a stream of task vectors tau_i = theta_i -
theta_0, one fine-tuned model at a time, key by key: peak memory is the pre-trained model, the
algorithm's accumulators and one tensor of one fine-tuned model, whatever the number of models.

Every floating-point entry of the state dict (parameters and float buffers) is merged, computed in
float32 (float64 stays float64) and written back in the model's own dtype. Other entries (integer
buffers such as BatchNorm's num_batches_tracked or HF's position_ids) keep the pre-trained values.

Averaging methods need no theta_0 (FusionBench's `SimpleAverageAlgorithm().run([m1, m2, m3])`): without
'_pretrained_', the first model anchors the stream (its own task vector is zero).
"""

from __future__ import annotations

import copy
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..state_dicts import state_mismatch
from .modelpool.base import PRETRAINED, BaseModelPool, as_model_pool
from .signature import COSMETIC_OPTIONS, signature_parameters

# (model name, state key, task vector) -> task vector; DARE plugs in here.
TaskVectorTransform = Callable[[str, str, torch.Tensor], torch.Tensor]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _scalar(value: Any) -> Any:
    """0-d torch tensors and NumPy arrays as Python numbers (sweeps over torch/np.linspace)."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and value.dtype != torch.bool and not value.is_complex():
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def finite_number(name: str, value: Any) -> float:
    """A coefficient from a config or a caller: a real, finite number (Python, NumPy or a 0-d
    tensor), else a UserError."""
    value = _scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value!r}; pass e.g. {name}=0.3")
    return float(value)


def integer(name: str, value: Any) -> int:
    """An integer setting (a seed): Python, NumPy or a 0-d integer tensor, else a UserError."""
    value = _scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise UserError(f"{name} must be an integer, got {value!r}; pass e.g. {name}=0")
    return int(value)


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

    def state(self, name: str) -> Mapping[str, torch.Tensor]:
        """The fine-tuned model's state (lazy for file pools), checked against theta_0's keys and shapes."""
        state = self.pool.load_state(name)
        problem = state_mismatch(self.base, state)
        if problem:
            raise UserError(
                f"model '{name}' does not match the pre-trained model '{PRETRAINED}': {problem}; "
                "every model must have the pre-trained model's architecture"
            )
        return state

    def task_vector(self, name: str, keys: Sequence[str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
        """(key, tau) for the float keys (or `keys`), in the accumulation dtype, on theta_0's device."""
        state = self.state(name)
        for key in self.float_keys if keys is None else keys:
            base = self.base[key]
            dtype = accumulation_dtype(base.dtype)
            tau = state[key].to(device=base.device, dtype=dtype) - base.to(dtype)
            yield key, (self.transform(name, key, tau) if self.transform else tau)

    def weights(self, name: str, keys: Sequence[str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
        """(key, theta) of one fine-tuned model, in the accumulation dtype on theta_0's device
        (the methods that average weights rather than task vectors: RegMean, Fisher)."""
        state = self.state(name)
        for key in self.float_keys if keys is None else keys:
            base = self.base[key]
            yield key, state[key].to(device=base.device, dtype=accumulation_dtype(base.dtype))

    def per_key(self, keys: Sequence[str] | None = None) -> Iterator[tuple[str, list[torch.Tensor]]]:
        """(key, [tau_t for every model, in pool order]) for the float keys (or `keys`), one key at a
        time: every model's state is opened once (file pools read lazily), so memory holds one key
        of each model, not whole models."""
        states = {name: self.state(name) for name in self.names}
        for key in self.float_keys if keys is None else keys:
            base = self.base[key]
            dtype = accumulation_dtype(base.dtype)
            taus = []
            for name in self.names:
                tau = states[name][key].to(device=base.device, dtype=dtype) - base.to(dtype)
                taus.append(self.transform(name, key, tau) if self.transform else tau)
            yield key, taus

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

    def plus_base(self, delta: dict[str, torch.Tensor], scale: float = 1.0) -> dict[str, torch.Tensor]:
        """scale * theta_0 + delta, computed in place in `delta`'s tensors."""
        for key, value in delta.items():
            value.add_(self.base[key].to(value.dtype), alpha=scale)
        return delta


class MergeAlgorithm(ABC):
    """`run(models)` merges a dict of modules (with '_pretrained_'), a list of modules (averaging
    methods only) or a model pool into a NEW module.

    The caller's modules are left untouched unless `inplace=True`, in which case the merged weights
    are written into the module FusionBench writes into (`inplace_target`) and it is returned.
    """

    # Task-vector methods need theta_0; averaging methods set this False.
    requires_pretrained: ClassVar[bool] = True

    def __init__(self, inplace: bool = False, **options: Any):
        unknown = sorted(set(options) - set(COSMETIC_OPTIONS))
        if unknown:
            raise UserError(
                f"unknown argument(s) {', '.join(unknown)} for {type(self).__name__}; "
                f"valid: {', '.join(self.setting_names())}"
            )
        self.inplace = bool(inplace)
        self._options = dict(options)

    @classmethod
    def setting_names(cls) -> list[str]:
        return list(signature_parameters(cls, cosmetic=True))

    def settings(self) -> dict[str, Any]:
        """The algorithm's settings (plain values), for reports and file names."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @property
    def config(self) -> Any:
        """FusionBench's `algorithm.config`: an OmegaConf DictConfig with `_target_` and the settings."""
        from omegaconf import OmegaConf

        return OmegaConf.create({"_target_": type(self).__name__, **self.settings(), **self._options})

    def run(self, modelpool: BaseModelPool | Mapping[str, nn.Module] | Sequence[nn.Module], inplace: bool | None = None) -> nn.Module:
        pool = as_model_pool(modelpool)
        names = list(pool.model_names)
        if pool.has_pretrained:
            anchor_name = PRETRAINED
        elif self.requires_pretrained:
            raise UserError(
                f"the models have no '{PRETRAINED}' entry; add the pre-trained model under the key '{PRETRAINED}' "
                f"(task vectors are differences from it; only averaging methods merge a plain list)"
            )
        elif names:
            anchor_name = names[0]
        if not names:
            raise UserError(f"nothing to merge: the models hold only special entries ({', '.join(pool.all_model_names) or 'none'}); add at least one fine-tuned model")
        self.check_model_names(names)
        anchor = pool.load_model(anchor_name)
        self.prepare(anchor)
        stream = TaskVectorStream(pool, anchor.state_dict(), self.transform_task_vector)
        with torch.no_grad():
            merged = self.merge(stream)
        in_place = self.inplace if inplace is None else bool(inplace)
        if in_place:
            target_name = self.inplace_target(anchor_name, names)
            target = anchor if target_name == anchor_name else pool.load_model(target_name)
            if target is not anchor:
                # Entries the merge leaves alone are the anchor's, whichever module receives it.
                write_back(target, {k: v for k, v in stream.base.items() if k not in merged})
        else:
            # A pool that loads from disk hands out fresh modules nobody else holds: no copy needed.
            target = anchor if pool.fresh_models else copy.deepcopy(anchor)
        write_back(target, merged)
        return target

    def attach_taskpool(self, taskpool: Any) -> None:
        """Hook: methods that learn at test time (AdaMerging) read the task pool's unlabeled inputs."""

    def inplace_target(self, anchor_name: str, names: list[str]) -> str:
        """The module that receives the merge under inplace=True (FusionBench: theta_0's)."""
        return anchor_name

    def check_model_names(self, names: list[str]) -> None:
        """Hook: validate settings that depend on the model names (per-task coefficients)."""

    def prepare(self, pretrained: nn.Module) -> None:
        """Hook: look at the pre-trained module's structure before merging (DARE's parameter keys)."""

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
