"""TALL masks and Consensus task arithmetic (Wang et al., ICML 2024, "Localizing Task Information for
Improved Model Merging and Compression").

With the multi-task vector tau_MTL = sum_t tau_t, task t's TALL mask keeps the entries where

    |tau_t| > lambda_t * |tau_MTL - tau_t|

(strictly greater: the original code, and FusionBench's tall_mask/utils.py, compare with `>`),
i.e. where task t's own update outweighs, by 1/lambda_t, what the other tasks add there.

- TallMaskTaskArithmeticAlgorithm (FusionBench's name and settings): one model per task,
  theta_0 + m_t * tau_MTL (the TALL-mask compression); run() returns FusionBench's
  {"models": {name: module}, "metadata": None}.
- ConsensusTaskArithmeticAlgorithm (the paper's Consensus Merging; not in FusionBench): keeps the
  entries at least `prun_thre_k` tasks' masks select, theta = theta_0 + scaling_factor * (consensus
  * tau_MTL). k = 2 removes "selfish" (one task) and "catastrophic" (no task) weights.

FusionBench 0.2.33's TallMaskTaskArithmeticAlgorithm fails on any nn.Module pool (its state-dict
check rejects Parameters beside Tensors) and, past that, compares |theta_0 - tau_t| instead of
|tau_t| (its arguments are in the wrong order); the formula here is the one its own
tall_mask/utils.py and the original code compute (checked against that function in tests/).

Both stream: one pass sums tau_MTL, a second counts or applies each model's mask, so memory is
theta_0, tau_MTL, the count and one model (the per-task variant returns T models by design).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream, finite_number, integer, write_back
from .modelpool.base import BaseModelPool, as_model_pool


def tall_mask(tau: torch.Tensor, multi_task: torch.Tensor, tall_mask_lambda: float) -> torch.Tensor:
    """Entries where task t's update outweighs the other tasks': |tau_t| > lambda |tau_MTL - tau_t|."""
    return tau.abs() > tall_mask_lambda * (multi_task - tau).abs()


def _lambdas(value: Any, names: list[str]) -> dict[str, float]:
    """One lambda per model: a number for all, or a list in pool order, or {model: lambda}."""
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        if missing:
            raise UserError(f"tall_mask_lambda has no value for model(s) {', '.join(missing)}; give one per model")
        return {n: finite_number(f"tall_mask_lambda[{n}]", value[n]) for n in names}
    if isinstance(value, (list, tuple, np.ndarray)) or (isinstance(value, torch.Tensor) and value.ndim == 1):
        values = list(value)
        if len(values) != len(names):
            raise UserError(f"tall_mask_lambda has {len(values)} values for {len(names)} models; give one per model")
        return {n: finite_number(f"tall_mask_lambda[{i}]", v) for i, (n, v) in enumerate(zip(names, values))}
    return dict.fromkeys(names, finite_number("tall_mask_lambda", value))


def _check_lambda(value: Any) -> Any:
    """Validate a lambda setting early (its per-model form is resolved once the names are known)."""
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if finite_number("tall_mask_lambda", item) < 0:
            raise UserError(f"tall_mask_lambda must be >= 0, got {item}")
    return value


class TallMaskTaskArithmeticAlgorithm(MergeAlgorithm):
    """FusionBench's TallMaskTaskArithmeticAlgorithm(tall_mask_lambda, debug, verbose): per-task models."""

    def __init__(self, tall_mask_lambda: float = 0.6, debug: int = 0, verbose: int = 0, inplace: bool = False, **options: Any):
        super().__init__(inplace, verbose=verbose, **options)
        self.tall_mask_lambda = _check_lambda(tall_mask_lambda)
        self.debug = integer("debug", debug)  # FusionBench's logging switch; nothing to debug-print here

    def check_model_names(self, names: list[str]) -> None:
        self._lambdas = _lambdas(self.tall_mask_lambda, names)

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:  # pragma: no cover - run() is overridden
        raise NotImplementedError

    # FusionBench's TALL-mask run returns {models: per-task models, metadata}, not one module: the override differs on purpose.
    def run(self, modelpool: BaseModelPool | Mapping[str, nn.Module] | Sequence[nn.Module], inplace: bool | None = None) -> dict[str, Any]:  # type: ignore[override]
        pool = as_model_pool(modelpool)
        self._validate_pool(pool)
        names = list(pool.model_names)
        self.check_model_names(names)
        anchor = pool.load_pretrained_model()
        stream = TaskVectorStream(pool, anchor.state_dict())
        models: dict[str, nn.Module] = {}
        with torch.no_grad():
            multi_task = stream.weighted_sum(dict.fromkeys(names, 1.0))
            for name in names:
                retrieved = {key: multi_task[key] * tall_mask(tau, multi_task[key], self._lambdas[name]) for key, tau in stream.task_vector(name)}
                model = copy.deepcopy(anchor)
                write_back(model, stream.plus_base(retrieved))
                models[name] = model
        return {"models": models, "metadata": None}

    def _validate_pool(self, pool: BaseModelPool) -> None:
        if not pool.has_pretrained:
            raise UserError("TALL masks need the pre-trained model under '_pretrained_' (task vectors are differences from it)")
        if not pool.model_names:
            raise UserError("nothing to merge: add at least one fine-tuned model")


class ConsensusTaskArithmeticAlgorithm(MergeAlgorithm):
    """Consensus Merging over task arithmetic: entries used by >= prun_thre_k tasks' TALL masks."""

    def __init__(self, scaling_factor: float = 0.3, prun_thre_k: int = 2, tall_mask_lambda: Any = 0.6, inplace: bool = False, **options: Any):
        super().__init__(inplace, **options)
        self.scaling_factor = finite_number("scaling_factor", scaling_factor)
        self.prun_thre_k = integer("prun_thre_k", prun_thre_k)
        if self.prun_thre_k < 0:
            raise UserError(f"prun_thre_k is the number of tasks an entry must serve and must be >= 0, got {prun_thre_k}")
        self.tall_mask_lambda = _check_lambda(tall_mask_lambda)

    def check_model_names(self, names: list[str]) -> None:
        self._lambdas = _lambdas(self.tall_mask_lambda, names)

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        multi_task = stream.weighted_sum(dict.fromkeys(stream.names, 1.0))
        count_dtype = torch.int16 if len(stream.names) < 2**15 else torch.int32
        counts = {key: torch.zeros(value.shape, dtype=count_dtype, device=value.device) for key, value in multi_task.items()}
        for name in stream.names:
            for key, tau in stream.task_vector(name):
                counts[key] += tall_mask(tau, multi_task[key], self._lambdas[name])
        for key, value in multi_task.items():
            value.mul_(counts.pop(key) >= self.prun_thre_k).mul_(self.scaling_factor)
        return stream.plus_base(multi_task)

