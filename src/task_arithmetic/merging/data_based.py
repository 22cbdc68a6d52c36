"""The shared part of the merges that read data (RegMean, RegMean++, Fisher): where the inputs come
from and how many are read.

Each fine-tuned model is paired with its own task's unlabeled inputs (FusionBench: the model
pool's train dataset of the same name), read in batches until at least `num_examples` examples
are used (FusionBench's rule, checked before each batch: 256 examples in batches of 32 read 8
batches, 8 in batches of 3 read 9 examples). The inputs come from the task pool (src/merge.py
attaches it; `split`, ours, picks train, val or test, train by default as in FusionBench), or from
`run(models, merge_data=...)`. Shuffling uses `seed` (ours; FusionBench draws from the global
generator). Statistics are accumulated batch by batch; no batch is kept beyond its use except
RegMean++'s block inputs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .adamerging import TestTimeData
from .base import MergeAlgorithm, integer
from .modelpool.base import BaseModelPool

SPLITS = ("train", "val", "test")
LOADER_KEYS = ("batch_size", "num_workers")


def loader_settings(dataloader_kwargs: Mapping[str, Any] | None) -> dict[str, int]:
    """FusionBench's dataloader_kwargs; batch_size and num_workers are what the suite's loaders take."""
    kwargs = dict(dataloader_kwargs or {})
    unknown = sorted(set(kwargs) - set(LOADER_KEYS))
    if unknown:
        raise UserError(f"dataloader_kwargs has unsupported key(s) {', '.join(unknown)}; valid: {', '.join(LOADER_KEYS)}")
    batch_size = integer("dataloader_kwargs.batch_size", kwargs.get("batch_size", 32))
    num_workers = integer("dataloader_kwargs.num_workers", kwargs.get("num_workers", 0))
    if batch_size < 1 or num_workers < 0:
        raise UserError(f"dataloader_kwargs needs batch_size >= 1 and num_workers >= 0, got {kwargs}")
    return {"batch_size": batch_size, "num_workers": num_workers}


def compile_patterns(patterns: Sequence[str] | None, name: str) -> list[re.Pattern]:
    if isinstance(patterns, str):
        raise UserError(f"{name} must be a list of regular expressions, got the string {patterns!r}; write [{patterns}]")
    compiled = []
    for pattern in patterns or []:
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise UserError(f"{name} holds an invalid regular expression {pattern!r} ({err})") from err
    return compiled


def excluded(key: str, patterns: Sequence[re.Pattern]) -> bool:
    """FusionBench's rule: re.match (anchored at the start) of any pattern."""
    return any(p.match(key) for p in patterns)


def evaluation_copy(model: nn.Module, device: torch.device, fresh: bool) -> nn.Module:
    """`model` in eval mode on `device`; a copy unless the pool handed out a module nobody else holds
    (the caller's modules keep their device and training mode)."""
    if not fresh:
        model = copy.deepcopy(model)
    return model.to(device).eval()


class DataMergeAlgorithm(MergeAlgorithm):
    """A merge whose statistics come from each task's inputs; subclasses implement merge()."""

    def __init__(self, num_examples: int, dataloader_kwargs: Mapping[str, Any] | None, split: str, seed: int, inplace: bool, **options: Any):
        super().__init__(inplace, **options)
        self._num_examples = integer("num_examples", num_examples)
        if self._num_examples < 1:
            raise UserError(f"the number of examples must be >= 1, got {num_examples}")
        self.dataloader_kwargs = loader_settings(dataloader_kwargs)
        if split not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.split = split
        self.seed = integer("seed", seed)
        self._taskpool: Any = None
        self._given: TestTimeData | None = None
        self._data: TestTimeData | None = None
        self._anchor: nn.Module | None = None
        self._names: list[str] = []

    def attach_taskpool(self, taskpool: Any) -> None:
        self._taskpool = taskpool

    def run(self, modelpool: BaseModelPool | Mapping[str, nn.Module] | Sequence[nn.Module], inplace: bool | None = None, merge_data: TestTimeData | None = None) -> nn.Module:
        self._given = merge_data
        try:
            return super().run(modelpool, inplace)
        finally:
            self._given = self._data = self._anchor = None

    @property
    def data(self) -> TestTimeData:
        """The task inputs: prepare() attaches them for the duration of run()."""
        assert self._data is not None, "prepare() attaches the inputs before the merge reads them"
        return self._data

    @property
    def anchor(self) -> nn.Module:
        """The module prepare() was given (theta_0): set for the duration of run()."""
        assert self._anchor is not None, "prepare() sets the anchor before the merge reads it"
        return self._anchor

    def check_model_names(self, names: list[str]) -> None:
        self._names = list(names)

    def prepare(self, pretrained: nn.Module) -> None:
        self._anchor = pretrained
        self._data = data = self._given if self._given is not None else self._load_data(pretrained)
        missing = [n for n in self._names if n not in data.tasks]
        if missing:  # before any statistics are computed
            raise UserError(
                f"no inputs for model(s) {', '.join(missing)}: the task pool has {', '.join(data.tasks)}; "
                "a data-based merge pairs each model with the task of the same name"
            )

    def _load_data(self, pretrained: nn.Module) -> TestTimeData:
        if self._taskpool is None or not hasattr(self._taskpool, "test_time_data"):
            raise UserError(
                f"{type(self).__name__} reads each task's inputs from the task pool: give a taskpool (e.g. taskpool=embedded/all); "
                f"its {self.split} split is used"
            )
        return self._taskpool.test_time_data(pretrained, self.dataloader_kwargs["batch_size"], self.dataloader_kwargs["num_workers"], self.seed, split=self.split, epochs=1)

    def batches(self, name: str) -> Iterator[torch.Tensor]:
        """Model `name`'s task inputs on the data device, until >= num_examples have been used."""
        data = self.data
        iterator = iter(data.tasks[name].batches)
        used = 0
        while used < self._num_examples:
            images = next(iterator, None)
            if images is None:
                break
            yield images.to(data.device)
            used += images.shape[0]
        if used == 0:
            raise UserError(f"the task of model '{name}' has no inputs in its {self.split} split")

    def features(self, call: Any, images: torch.Tensor) -> torch.Tensor:
        return self.data.features(call, images)

    def head(self, name: str) -> nn.Module:
        return self.data.tasks[name].head
