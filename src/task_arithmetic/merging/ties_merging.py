"""TIES-merging (Yadav et al., NeurIPS 2023): trim, elect sign, disjoint merge.

1. Trim: keep the `threshold` % largest-magnitude entries of each task vector (over all merged
   entries of that model, as in the paper); entries at the boundary magnitude are kept too.
2. Elect: per entry, the sign of the sum of the trimmed task vectors (0 where it sums to 0).
3. Disjoint merge: per entry, combine only the trimmed values whose sign equals the elected one:
   `mean` (the paper's disjoint mean; FusionBench's default is `sum`), `sum`, or `max` magnitude.
theta = theta_0 + scaling_factor * merged.

The models are streamed three times (threshold, election, merge), so memory stays at a few
model-sized accumulators regardless of the number of models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import UserError
from .base import MergeAlgorithm, TaskVectorStream, finite_number

MERGE_FUNCS = ("mean", "sum", "max")


class TiesMergingAlgorithm(MergeAlgorithm):
    def __init__(
        self,
        scaling_factor: float = 0.3,
        threshold: float = 20,
        merge_func: str = "mean",
        remove_keys: Sequence[str] = (),
        inplace: bool = False,
    ):
        super().__init__(inplace)
        self.scaling_factor = finite_number("scaling_factor", scaling_factor)
        self.threshold = finite_number("threshold", threshold)
        if not 0 < self.threshold <= 100:
            raise UserError(f"threshold is the percentage of entries kept per task vector and must be in (0, 100], got {threshold}")
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

    def magnitude_threshold(self, stream: TaskVectorStream, name: str, keys: list[str]) -> float:
        """The smallest magnitude kept: the n_keep-th largest |tau| of this model."""
        total = sum(stream.base[k].numel() for k in keys)
        n_keep = int(total * self.threshold / 100)
        if n_keep >= total:
            return float("-inf")
        if n_keep == 0:
            return float("inf")
        wide = any(stream.base[k].dtype == torch.float64 for k in keys)
        magnitudes = torch.empty(total, dtype=torch.float64 if wide else torch.float32)
        offset = 0
        for _key, tau in stream.task_vector(name, keys):
            magnitudes[offset : offset + tau.numel()] = tau.abs().flatten()
            offset += tau.numel()
        # numpy's in-place introselect: torch.kthvalue would add a copy and an int64 index array,
        # three times this buffer, which dominates TIES's peak memory on large models.
        position = total - n_keep
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
        return {key: torch.sign(mass.pop(key)).to(torch.int8) for key in list(mass)}

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
