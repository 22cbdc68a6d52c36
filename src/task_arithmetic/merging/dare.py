"""DARE (Yu et al., ICML 2024): drop task-vector entries at random, rescale the rest, then merge.

Each entry of tau_i is dropped with probability `sparsity_ratio`; the kept ones are divided by
(1 - sparsity_ratio) when `rescale` is on, so the expected task vector is unchanged. The random
mask of (model, key) comes from its own generator seeded by sha256("seed:model:key"): the result
does not depend on the order of the models, and the same seed gives the same merge everywhere.
The masks are drawn on the CPU, so a GPU merge matches a CPU one.

DareAlgorithm merges the sparsified vectors with task arithmetic (FusionBench's
DareTaskArithmetic); DareSimpleAverage and DareTiesMerging use the other two combiners.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..errors import UserError
from .base import finite_number
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
    """Adds DARE's drop-and-rescale to any algorithm's task vectors."""

    def _init_dare(self, sparsity_ratio: float, rescale: bool, seed: int, only_on_linear_weights: bool) -> None:
        self.sparsity_ratio = finite_number("sparsity_ratio", sparsity_ratio)
        if not 0 <= self.sparsity_ratio < 1:
            raise UserError(f"sparsity_ratio is the fraction of entries dropped and must be in [0, 1), got {sparsity_ratio}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"seed must be an integer, got {seed!r}")
        self.rescale = bool(rescale)
        self.seed = seed
        self.only_on_linear_weights = bool(only_on_linear_weights)
        self._linear_keys: set[str] | None = None

    def prepare(self, pretrained: nn.Module) -> None:
        self._linear_keys = {
            f"{name}.weight" if name else "weight" for name, module in pretrained.named_modules() if isinstance(module, nn.Linear)
        }

    def transform_task_vector(self, name: str, key: str, tau: torch.Tensor) -> torch.Tensor:
        if self.sparsity_ratio == 0 or (self.only_on_linear_weights and key not in (self._linear_keys or set())):
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
        rescale: bool = True,
        seed: int = 0,
        only_on_linear_weights: bool = False,
        inplace: bool = False,
    ):
        TaskArithmeticAlgorithm.__init__(self, scaling_factor=scaling_factor, inplace=inplace)
        self._init_dare(sparsity_ratio, rescale, seed, only_on_linear_weights)


DareTaskArithmetic = DareAlgorithm


class DareSimpleAverage(DareMixin, SimpleAverageAlgorithm):
    def __init__(self, sparsity_ratio: float = 0.5, rescale: bool = True, seed: int = 0, only_on_linear_weights: bool = False, inplace: bool = False):
        SimpleAverageAlgorithm.__init__(self, inplace=inplace)
        self._init_dare(sparsity_ratio, rescale, seed, only_on_linear_weights)


class DareTiesMerging(DareMixin, TiesMergingAlgorithm):
    def __init__(
        self,
        scaling_factor: float = 0.3,
        threshold: float = 20,
        merge_func: str = "mean",
        remove_keys: tuple[str, ...] = (),
        sparsity_ratio: float = 0.5,
        rescale: bool = True,
        seed: int = 0,
        only_on_linear_weights: bool = False,
        inplace: bool = False,
    ):
        TiesMergingAlgorithm.__init__(self, scaling_factor, threshold, merge_func, remove_keys, inplace)
        self._init_dare(sparsity_ratio, rescale, seed, only_on_linear_weights)
