"""RegMean (Jin et al., ICLR 2023, "Dataless Knowledge Fusion by Merging Weights of Language
Models"), FusionBench's RegMeanAlgorithmForCLIP.

Per linear map (activations.py: nn.Linear, open_clip's packed attention and projection), the
closed-form minimiser of sum_t ||X_t W - X_t W_t||^2 over the merged W:

    W = (sum_t G~_t)^-1 sum_t G~_t W_t,   G_t = X_t^T X_t / rows

with X_t the map's inputs when fine-tuned model t runs on its own task's inputs, and G~_t = G_t with
its off-diagonal entries times `reduce_non_diagonal_ratio` (0.95: the paper's alpha, a shrinkage
toward the diagonal that keeps the sum invertible). Every other float entry (biases, norms,
embeddings, buffers) is the mean of the fine-tuned models; entries matching
`exclude_param_names_regex` (re.match on the state-dict key) keep theta_0, as in FusionBench.

Streaming: one fine-tuned model at a time; its Grams are summed batch by batch, then folded into
the running sums sum_t G~_t and sum_t G~_t W_t (a linear solve at the end; FusionBench inverts). Peak
memory: theta_0, the merged sums (one Gram per linear map + one model), one fine-tuned model, its
Grams and one batch's activations; FusionBench holds every model and every model's Grams.

Linear and post-hoc run pools are evaluated in the linearised model, whose layers see theta_0's
activations, so there the Grams come from theta_0 on each task's inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .activations import GramRecorder
from .base import TaskVectorStream, accumulation_dtype, finite_number
from .data_based import DataMergeAlgorithm, compile_patterns, evaluation_copy, excluded


def reduce_non_diagonal(gram: torch.Tensor, ratio: float) -> torch.Tensor:
    """Off-diagonal entries times `ratio`, the diagonal unchanged (in place)."""
    diagonal = gram.diagonal().clone()
    gram.mul_(ratio)
    gram.diagonal().copy_(diagonal)
    return gram


class RegMeanSums:
    """sum_t G~_t and sum_t G~_t W_t per linear map, and sum_t theta_t for the averaged entries.

    `in_out` maps store W as (in, out) and compute x W (open_clip's proj; every Linear when
    weight_transpose is false); nn.Linear stores (out, in) and computes x W^T.
    """

    def __init__(self, ratio: float):
        self.ratio = ratio
        self.grams: dict[str, torch.Tensor] = {}
        self.products: dict[str, torch.Tensor] = {}
        self.totals: dict[str, torch.Tensor] = {}
        self.in_out: set[str] = set()
        self.count = 0

    def add_linear(self, key: str, gram: torch.Tensor, weight: torch.Tensor, in_out: bool) -> None:
        gram = reduce_non_diagonal(gram.to(weight.device, weight.dtype), self.ratio)
        stored = weight if in_out else weight.T
        if stored.shape[0] != gram.shape[0]:
            raise UserError(
                f"{key}: its weight {tuple(weight.shape)} does not take inputs of width {gram.shape[0]} "
                f"as {'(in, out)' if in_out else '(out, in)'}; weight_transpose=true is right for nn.Linear layers"
            )
        product = gram @ stored
        if in_out:
            self.in_out.add(key)
        if key in self.grams:
            self.grams[key] += gram
            self.products[key] += product
        else:
            self.grams[key], self.products[key] = gram, product

    def add_average(self, key: str, value: torch.Tensor) -> None:
        if key in self.totals:
            self.totals[key] += value
        else:
            self.totals[key] = value.clone()

    def merged(self) -> dict[str, torch.Tensor]:
        out = {key: total / self.count for key, total in self.totals.items()}
        for key in list(self.grams):
            solved = torch.linalg.solve(self.grams.pop(key), self.products.pop(key))
            out[key] = solved if key in self.in_out else solved.T.contiguous()
        return out


class RegMeanAlgorithm(DataMergeAlgorithm):
    """FusionBench's settings (its config regmean/clip_regmean.yaml), plus `split` and `seed` (ours)."""

    def __init__(
        self,
        num_regmean_examples: int = 256,
        exclude_param_names_regex: Sequence[str] = (),
        reduce_non_diagonal_ratio: float = 0.95,
        weight_transpose: bool = True,
        dataloader_kwargs: Mapping[str, Any] | None = None,
        split: str = "train",
        seed: int = 0,
        inplace: bool = False,
        **options: Any,
    ):
        super().__init__(num_regmean_examples, dataloader_kwargs or {"batch_size": 32, "num_workers": 0}, split, seed, inplace, **options)
        self.num_regmean_examples = self._num_examples
        self._patterns = compile_patterns(exclude_param_names_regex, "exclude_param_names_regex")
        self.exclude_param_names_regex = [p.pattern for p in self._patterns]
        self.reduce_non_diagonal_ratio = finite_number("reduce_non_diagonal_ratio", reduce_non_diagonal_ratio)
        # FusionBench's switch for models storing Linear weights as (in, out); nn.Linear's are (out, in).
        self.weight_transpose = bool(weight_transpose)

    def linearized(self, stream: TaskVectorStream) -> bool:
        return bool(getattr(stream.pool, "linearized", False))

    def model_for_statistics(self, stream: TaskVectorStream, name: str) -> nn.Module:
        """The module whose activations define the Grams: theta_0 for linearised pools, else the model."""
        if self.linearized(stream):
            return evaluation_copy(self.anchor, self.data.device, fresh=False)  # the anchor becomes the merge
        return evaluation_copy(stream.pool.load_model(name), self.data.device, stream.pool.fresh_models)

    def task_grams(self, stream: TaskVectorStream, name: str) -> tuple[dict[str, torch.Tensor], set[str]]:
        model = self.model_for_statistics(stream, name)
        dtype = accumulation_dtype(next(p.dtype for p in model.parameters() if p.is_floating_point()))
        with torch.no_grad(), GramRecorder(model, dtype) as stats:
            for images in self.batches(name):
                self.features(model, images)
        return stats.means(), stats.transposed

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        sums = RegMeanSums(self.reduce_non_diagonal_ratio)
        keys = [k for k in stream.float_keys if not excluded(k, self._patterns)]
        for name in stream.names:
            grams, proj_keys = self.task_grams(stream, name)
            for key, weight in stream.weights(name, keys):
                if key in grams:
                    sums.add_linear(key, grams.pop(key), weight, key in proj_keys or not self.weight_transpose)
                else:
                    sums.add_average(key, weight)
            sums.count += 1
        return sums.merged()


class RegMeanAlgorithmForCLIP(RegMeanAlgorithm):
    """FusionBench's CLIP class: the CLIP part (heads, preprocessing) is the task pool's job here."""
