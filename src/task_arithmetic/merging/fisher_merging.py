"""Fisher merging (Matena & Raffel, NeurIPS 2022), FusionBench's FisherMergingForCLIPVisionModel.

theta = sum_t c_t (F_t + eps) theta_t / sum_t c_t (F_t + eps), entry by entry, with F_t the diagonal
Fisher of fine-tuned model t on its own task's inputs and eps = `minimal_fisher_weight`. As
FusionBench (from MergeLM) estimates it: per batch, the squared gradient of
sum_i sum_c sqrt(p_ic) log p_ic (p = softmax of the logits through the task's frozen head, taken
as constant), summed over batches and divided by the number of examples; no labels are read.
With `normalize_fisher_weight`, c_t = 1 / (||F_t|| + eps) (||.|| over all merged parameters; the
normalisation of c to a sum of 1 and FusionBench's 1/T cancel in the ratio), else c_t = 1.
Buffers are averaged; entries matching `exclude_param_names_regex` keep theta_0.

Streaming: for each model its Fisher is accumulated batch by batch (one model-sized tensor), then
folded into sum_t c_t (F_t + eps) theta_t and sum_t c_t (F_t + eps), and dropped. Peak memory:
theta_0, those two sums, one model, its Fisher, and one batch's backward pass. FusionBench keeps
every model and every Fisher.

Linear and post-hoc run pools: the gradient is that of the linearised model at theta_t (the pool's
functional model), the model those runs are evaluated as.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import UserError
from .base import TaskVectorStream, accumulation_dtype, finite_number
from .data_based import DataMergeAlgorithm, compile_patterns, evaluation_copy, excluded


def fisher_objective(logits: torch.Tensor) -> torch.Tensor:
    """sum over batch and classes of sqrt(p) log p, p detached: its gradient squared is the batch's
    Fisher estimate (the expectation over the model's own predictive distribution)."""
    log_p = torch.log_softmax(logits, dim=-1)
    return (log_p.detach().exp().sqrt() * log_p).sum()


class FisherMergingAlgorithm(DataMergeAlgorithm):
    """FusionBench's settings (fisher_merging/clip_fisher_merging.yaml), plus `split` and `seed` (ours)."""

    def __init__(
        self,
        exclude_param_names_regex: Sequence[str] = (),
        normalize_fisher_weight: bool = True,
        minimal_fisher_weight: float = 1e-6,
        num_fisher_examples: int = 256,
        dataloader_kwargs: Mapping[str, Any] | None = None,
        split: str = "train",
        seed: int = 0,
        inplace: bool = False,
        **options: Any,
    ):
        super().__init__(num_fisher_examples, dataloader_kwargs or {"batch_size": 32, "num_workers": 0}, split, seed, inplace, **options)
        self.num_fisher_examples = self._num_examples
        self._patterns = compile_patterns(exclude_param_names_regex, "exclude_param_names_regex")
        self.exclude_param_names_regex = [p.pattern for p in self._patterns]
        self.normalize_fisher_weight = bool(normalize_fisher_weight)
        self.minimal_fisher_weight = finite_number("minimal_fisher_weight", minimal_fisher_weight)
        if self.minimal_fisher_weight < 0:
            raise UserError(f"minimal_fisher_weight must be >= 0, got {minimal_fisher_weight}")

    def fisher(self, stream: TaskVectorStream, name: str, keys: list[str]) -> dict[str, torch.Tensor]:
        """Model `name`'s diagonal Fisher over `keys` (the merged parameters), FusionBench's estimate."""
        pool = stream.pool
        device = self.data.device
        if getattr(pool, "linearized", False):
            module = evaluation_copy(self.anchor, device, fresh=False)
            params = {k: w.to(device).requires_grad_(True) for k, w in stream.weights(name, keys)}
        else:
            module = evaluation_copy(pool.load_model(name), device, pool.fresh_models)
            own = dict(module.named_parameters())
            params = {k: own[k].detach().requires_grad_(True) for k in keys}
        full = {k: v.detach() for k, v in module.named_parameters()} | params
        head = self.head(name)
        totals = {k: torch.zeros_like(p, dtype=accumulation_dtype(p.dtype)) for k, p in params.items()}
        seen = 0
        with torch.enable_grad():  # merges run under no_grad; binding may already compute (linearised: theta - theta_0)
            call = pool.functional_model(module)(full)
            for images in self.batches(name):
                logits = head(self.features(call, images))
                grads = torch.autograd.grad(fisher_objective(logits), list(params.values()), allow_unused=True)
                for key, grad in zip(params, grads):
                    if grad is not None:
                        totals[key] += grad.detach().to(totals[key].dtype) ** 2
                seen += images.shape[0]
        return {k: (v / seen).to(stream.base[k].device) for k, v in totals.items()}

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        keys = [k for k in stream.float_keys if not excluded(k, self._patterns)]
        parameters = set(dict(self.anchor.named_parameters()))
        fisher_keys = [k for k in keys if k in parameters]
        averaged = [k for k in keys if k not in parameters]  # buffers: no gradient, averaged
        eps = self.minimal_fisher_weight
        numerator: dict[str, torch.Tensor] = {}
        denominator: dict[str, torch.Tensor] = {}
        totals: dict[str, torch.Tensor] = {}
        for name in stream.names:
            fisher = self.fisher(stream, name, fisher_keys)
            norm = float(torch.stack([f.pow(2).sum() for f in fisher.values()]).sum().sqrt()) if fisher else 0.0
            weight = 1.0 / (norm + eps) if self.normalize_fisher_weight else 1.0
            for key, theta in stream.weights(name, keys):
                if key not in fisher:
                    totals[key] = totals[key] + theta if key in totals else theta.clone()
                    continue
                scaled = fisher.pop(key).add_(eps).mul_(weight)
                if key in numerator:
                    numerator[key] += scaled * theta
                    denominator[key] += scaled
                else:
                    numerator[key], denominator[key] = scaled * theta, scaled
        merged = {key: numerator[key] / denominator.pop(key) for key in list(numerator)}
        merged |= {key: totals[key] / len(stream.names) for key in averaged if key in totals}
        return merged


class FisherMergingForCLIPVisionModel(FisherMergingAlgorithm):
    """FusionBench's CLIP class: the CLIP part (heads, preprocessing) is the task pool's job here."""
