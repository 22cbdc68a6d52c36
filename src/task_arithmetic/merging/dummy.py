"""FusionBench's DummyAlgorithm: no merge; the pre-trained model (or the only model) as it is.
With the `_individual` pools it evaluates the pre-trained model through the same task pool."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream
from .modelpool.base import PRETRAINED, BaseModelPool, as_model_pool


class DummyAlgorithm(MergeAlgorithm):
    def __init__(self, inplace: bool = False, **options: Any):
        super().__init__(inplace, **options)

    def run(self, modelpool: BaseModelPool | Mapping[str, nn.Module] | Sequence[nn.Module], inplace: bool | None = None) -> nn.Module:
        pool = as_model_pool(modelpool)
        if pool.has_pretrained:
            name = PRETRAINED
        elif len(pool.model_names) == 1:
            name = pool.model_names[0]
        else:
            raise UserError(f"DummyAlgorithm returns one model: the pool needs '{PRETRAINED}' or exactly one model, has {', '.join(pool.all_model_names) or 'none'}")
        model = pool.load_model(name)
        return model if pool.fresh_models or inplace or self.inplace else copy.deepcopy(model)

    def merge(self, stream: TaskVectorStream):  # pragma: no cover - run() is overridden
        raise NotImplementedError
