"""TIES-merging (Yadav et al., NeurIPS 2023): trim, elect sign, disjoint merge.

As the original code and FusionBench run it:
1. Trim: `threshold` K is a fraction when <= 1 and a percentage when > 1 (0.2 and 20 both keep
   20 %). Over all merged entries of one model (d of them), keep those whose magnitude is >= the
   (d - int(d*K))-th smallest magnitude: int(d*K) + 1 entries, more on exact ties. K = 1 (or 100)
   keeps everything (the original code fails there).
2. Elect: per entry, the sign of the sum of the trimmed task vectors; where that sum is exactly 0,
   the "majority" sign, the sign of the sum of all elected signs (over every merged entry).
3. Disjoint merge: per entry, combine only the trimmed values whose sign equals the elected one:
   `mean` (the paper's disjoint mean; the suite's default), `sum` (FusionBench's config default),
   or `max` magnitude. theta = theta_0 + scaling_factor * merged.

The models are streamed three times (threshold, election, merge), so memory stays at a few
model-sized accumulators regardless of the number of models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream, finite_number

MERGE_FUNCS = ("mean", "sum", "max")


class TiesMergingAlgorithm(MergeAlgorithm):
    # FusionBench's positional order: (scaling_factor, threshold, remove_keys, merge_func).
    def __init__(
        self,
        scaling_factor: float = 0.3,
        threshold: float = 20,
        remove_keys: Sequence[str] = (),
        merge_func: str = "mean",
        inplace: bool = False,
        **options: Any,
    ):
        super().__init__(inplace, **options)
        self.scaling_factor = finite_number("scaling_factor", scaling_factor)
        self.threshold = finite_number("threshold", threshold)
        if not 0 < self.threshold <= 100:
            raise UserError(
                f"threshold is the share of entries kept per task vector, a fraction <= 1 or a percentage in (1, 100]; got {threshold}"
            )
        if isinstance(remove_keys, str):
            raise UserError(f"remove_keys must be a list of state_dict keys, got the string {remove_keys!r}; write [{remove_keys}]")
        if merge_func not in MERGE_FUNCS:
            raise UserError(f"unknown merge_func '{merge_func}'; valid: {', '.join(MERGE_FUNCS)}")
        self.merge_func = merge_func
        self.remove_keys = list(remove_keys or [])

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        unknown = [k for k in self.remove_keys if k not in stream.base]
        if unknown:
            raise UserError(f"remove_keys names keys the model does not have (e.g. '{unknown[0]}'); use state_dict key names")
        keys = [k for k in stream.float_keys if k not in self.remove_keys]
        thresholds = {name: self.magnitude_threshold(stream, name, keys) for name in stream.names}
        elected = self.elect_signs(stream, keys, thresholds)
        merged = self.disjoint_merge(stream, keys, thresholds, elected)
        for value in merged.values():
            value.mul_(self.scaling_factor)
        return stream.plus_base(merged)

    @property
    def keep_fraction(self) -> float:
        """The threshold as a fraction, as the original code reads it (K > 1 is a percentage)."""
        return self.threshold / 100 if self.threshold > 1 else self.threshold

    def magnitude_threshold(self, stream: TaskVectorStream, name: str, keys: list[str]) -> float:
        """The smallest magnitude kept: the (d - int(d*K))-th smallest |tau| of this model."""
        total = sum(stream.base[k].numel() for k in keys)
        n_keep = int(total * self.keep_fraction)
        if n_keep >= total or total == 0:
            return float("-inf")
        wide = any(stream.base[k].dtype == torch.float64 for k in keys)
        magnitudes = torch.empty(total, dtype=torch.float64 if wide else torch.float32)
        offset = 0
        for _key, tau in stream.task_vector(name, keys):
            magnitudes[offset : offset + tau.numel()] = tau.abs().flatten()
            offset += tau.numel()
        # numpy's in-place introselect: torch.kthvalue would add a copy and an int64 index array,
        # three times this buffer, which dominates TIES's peak memory on large models.
        position = total - n_keep - 1  # 0-based index of the (d - n_keep)-th smallest
        values = magnitudes.numpy()
        values.partition(position)
        return float(values[position])

    @staticmethod
    def trimmed(stream: TaskVectorStream, name: str, keys: list[str], threshold: float):
        for key, tau in stream.task_vector(name, keys):
            yield key, tau.mul_(tau.abs() >= threshold)

    def elect_signs(self, stream: TaskVectorStream, keys: list[str], thresholds: dict[str, float]) -> dict[str, torch.Tensor]:
        mass: dict[str, torch.Tensor] = {}
        for name in stream.names:
            for key, tau in self.trimmed(stream, name, keys, thresholds[name]):
                if key in mass:
                    mass[key].add_(tau)
                else:
                    mass[key] = tau
        signs = {key: torch.sign(mass.pop(key)).to(torch.int8) for key in list(mass)}
        # Ties (a zero sum) take the majority sign: the sign of the sum of all elected signs.
        balance = sum(int(s.sum(dtype=torch.int64)) for s in signs.values())
        majority = (balance > 0) - (balance < 0)
        if majority:
            for value in signs.values():
                value[value == 0] = majority
        return signs

    def disjoint_merge(
        self, stream: TaskVectorStream, keys: list[str], thresholds: dict[str, float], elected: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        merged: dict[str, torch.Tensor] = {}
        counts: dict[str, torch.Tensor] = {}
        count_dtype = torch.int16 if len(stream.names) < 2**15 else torch.int32
        for name in stream.names:
            for key, tau in self.trimmed(stream, name, keys, thresholds[name]):
                sign = elected[key]
                agree = (torch.sign(tau).to(torch.int8) == sign) & (sign != 0)
                tau.mul_(agree)
                if self.merge_func == "max":
                    tau.abs_()
                    merged[key] = torch.maximum(merged[key], tau) if key in merged else tau
                    continue
                if key in merged:
                    merged[key].add_(tau)
                    counts[key].add_(agree)
                else:
                    merged[key] = tau
                    counts[key] = agree.to(count_dtype)
        for key, value in merged.items():
            if self.merge_func == "max":
                value.mul_(elected[key])
            elif self.merge_func == "mean":
                value.div_(counts[key].clamp_(min=1))
        return merged
