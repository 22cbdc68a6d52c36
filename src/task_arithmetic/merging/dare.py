"""DARE (Yu et al., ICML 2024): drop task-vector entries at random, rescale the rest, then merge.

Each entry of tau_i is dropped with probability `sparsity_ratio`; the kept ones are divided by
(1 - sparsity_ratio) when `rescale` is on, so the expected task vector is unchanged. The random
mask of (model, key) comes from its own generator seeded by sha256("seed:model:key"): the result
does not depend on the order of the models, and the same seed gives the same merge everywhere.
The masks are drawn on the CPU, so a GPU merge matches a CPU one.

Drop-and-rescale applies to parameters only, as in FusionBench: buffers (BatchNorm's running
statistics, counters) are merged by the combiner untouched, since a dropped and rescaled
running_var can go negative. DARE with sparsity_ratio 0 is exactly its combiner.

DareAlgorithm (= DareTaskArithmetic) merges the sparsified vectors with task arithmetic;
DareSimpleAverage and DareTiesMerging use the other two combiners. Positional orders are
FusionBench's; `seed` (ours: FusionBench draws from the global generator) and `inplace` follow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .base import finite_number, integer
from .simple_average import SimpleAverageAlgorithm
from .task_arithmetic import TaskArithmeticAlgorithm
from .ties_merging import TiesMergingAlgorithm


def dare_seed(seed: int, model: str, key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{model}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def dare_keep_mask(shape: torch.Size | tuple[int, ...], sparsity_ratio: float, seed: int, model: str, key: str) -> torch.Tensor:
    generator = torch.Generator(device="cpu").manual_seed(dare_seed(seed, model, key))
    return torch.rand(tuple(shape), generator=generator) >= sparsity_ratio


class DareMixin:
    """Adds DARE's drop-and-rescale to any algorithm's task vectors (parameters only)."""

    requires_pretrained = True  # task vectors need theta_0, whatever the combiner

    def _init_dare(self, sparsity_ratio: float, rescale: bool, seed: int, only_on_linear_weights: bool) -> None:
        self.sparsity_ratio = finite_number("sparsity_ratio", sparsity_ratio)
        if not 0 <= self.sparsity_ratio < 1:
            raise UserError(f"sparsity_ratio is the fraction of entries dropped and must be in [0, 1), got {sparsity_ratio}")
        if not isinstance(rescale, (bool, int, np.bool_)):  # a YAML string "false" would be truthy
            raise UserError(f"rescale must be true or false, got {rescale!r}")
        self.rescale = bool(rescale)
        self.seed = integer("seed", seed)
        self.only_on_linear_weights = bool(only_on_linear_weights)
        self._droppable: set[str] = set()

    def prepare(self, pretrained: nn.Module) -> None:
        if self.only_on_linear_weights:
            self._droppable = {
                f"{name}.weight" if name else "weight" for name, module in pretrained.named_modules() if isinstance(module, nn.Linear)
            }
        else:
            self._droppable = {name for name, _ in pretrained.named_parameters()}

    def transform_task_vector(self, name: str, key: str, tau: torch.Tensor) -> torch.Tensor:
        if self.sparsity_ratio == 0 or key not in self._droppable:
            return tau
        keep = dare_keep_mask(tau.shape, self.sparsity_ratio, self.seed, name, key).to(tau.device)
        tau.mul_(keep)
        if self.rescale:
            tau.div_(1.0 - self.sparsity_ratio)
        return tau


class DareAlgorithm(DareMixin, TaskArithmeticAlgorithm):
    def __init__(
        self,
        scaling_factor: float = 0.3,
        sparsity_ratio: float = 0.5,
        only_on_linear_weights: bool = False,
        rescale: bool = True,
        seed: int = 0,
        inplace: bool = False,
        **options: Any,
    ):
        TaskArithmeticAlgorithm.__init__(self, scaling_factor=scaling_factor, inplace=inplace, **options)
        self._init_dare(sparsity_ratio, rescale, seed, only_on_linear_weights)


DareTaskArithmetic = DareAlgorithm


class DareSimpleAverage(DareMixin, SimpleAverageAlgorithm):
    def __init__(
        self,
        sparsity_ratio: float = 0.5,
        only_on_linear_weights: bool = False,
        rescale: bool = True,
        seed: int = 0,
        inplace: bool = False,
        **options: Any,
    ):
        SimpleAverageAlgorithm.__init__(self, inplace=inplace, **options)
        self._init_dare(sparsity_ratio, rescale, seed, only_on_linear_weights)

    def inplace_target(self, anchor_name: str, names: list[str]) -> str:
        return anchor_name  # FusionBench runs DareTaskArithmetic(1/n), which writes into theta_0


class DareTiesMerging(DareMixin, TiesMergingAlgorithm):
    def __init__(
        self,
        sparsity_ratio: float = 0.5,
        only_on_linear_weights: bool = False,
        rescale: bool = True,
        scaling_factor: float = 0.3,
        threshold: float = 20,
        remove_keys: Sequence[str] = (),
        merge_func: str = "mean",
        seed: int = 0,
        inplace: bool = False,
        **options: Any,
    ):
        TiesMergingAlgorithm.__init__(self, scaling_factor, threshold, remove_keys, merge_func, inplace, **options)
        self._init_dare(sparsity_ratio, rescale, seed, only_on_linear_weights)
