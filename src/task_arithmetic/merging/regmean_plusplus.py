"""RegMean++ (Nguyen et al., 2025), FusionBench's RegMeanAlgorithmForCLIPPlusPlus: RegMean block by
block, each block's Grams taken on the inputs the MERGED model feeds it, so the merge of later
blocks sees the merge of earlier ones.

As FusionBench runs it on a transformer (activations.py finds the repeated blocks):
1. the parameters before the first block (patch/class/position embeddings, the pre-norm) are the
   mean of the fine-tuned models;
2. each task's inputs go through that merged embedding: the first block's inputs X_t^0;
3. block by block: fine-tuned model t's block on X_t^i gives its Grams; the block's linear maps
   are merged by RegMean (regmean.py), its other parameters averaged; X_t^(i+1) = merged block(X_t^i);
4. parameters after the last block (the final norm, open_clip's projection) keep theta_0, as
   FusionBench leaves them.
`exclude_param_names_regex` is matched against names inside a block (FusionBench's behaviour);
matched block parameters keep theta_0.

Memory: theta_0, the merged model, one fine-tuned block at a time (read from each model's state),
and every task's block inputs for num_regmean_examples examples (T x examples x tokens x width:
8 x 256 x 50 x 768 floats = 315 MB for ViT-B/32; FusionBench holds the same plus every model).

Linear and post-hoc run pools: the linearised model's blocks all see theta_0's activations, so X is
propagated, and the Grams taken, with theta_0's blocks (RegMean with theta_0's activations, merged
block by block).
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .activations import BlockCall, GramRecorder, block_input, find_blocks, parameters_before
from .base import TaskVectorStream, accumulation_dtype, write_back
from .data_based import evaluation_copy, excluded
from .regmean import RegMeanAlgorithm, RegMeanSums


class RegMeanAlgorithmPlusPlus(RegMeanAlgorithm):
    """FusionBench's settings (regmean_plusplus/clip_regmean_plusplus.yaml), plus `split` and `seed`."""

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
        super().__init__(num_regmean_examples, exclude_param_names_regex, reduce_non_diagonal_ratio, weight_transpose, dataloader_kwargs, split, seed, inplace, **options)

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:
        device = self.data.device
        merged_model = evaluation_copy(self.anchor, device, fresh=False)
        prefix, blocks = find_blocks(merged_model)
        names = stream.names
        # One batch of the first task tells which parameters feed the first block; it is then used as usual.
        first_task = self.batches(names[0])
        first_batch = next(first_task)
        embedding = parameters_before(merged_model, blocks[0], lambda model: self.features(model, first_batch)) & set(stream.float_keys)
        sources = {name: self.batches(name) for name in names[1:]} | {names[0]: itertools.chain([first_batch], first_task)}
        merged: dict[str, torch.Tensor] = {}
        totals = RegMeanSums(self.reduce_non_diagonal_ratio)
        for name in names:
            for key, theta in stream.weights(name, sorted(embedding)):
                totals.add_average(key, theta)
            totals.count += 1
        merged |= totals.merged()
        linearized = self.linearized(stream)
        if not linearized:  # the linearised model's blocks see theta_0's embedding
            write_back(merged_model, {k: v.clone() for k, v in merged.items()})

        calls: dict[str, list[BlockCall]] = {}
        with torch.no_grad():
            for name in names:
                calls[name] = [block_input(blocks[0], functools.partial(self.features, merged_model, images)) for images in sources.pop(name)]
        dtype = accumulation_dtype(next(p.dtype for p in merged_model.parameters() if p.is_floating_point()))
        for index, block in enumerate(blocks):
            block_prefix = f"{prefix}.{index}." if prefix else f"{index}."
            keys = [k for k in stream.float_keys if k.startswith(block_prefix) and not excluded(k[len(block_prefix):], self._patterns)]
            sums = RegMeanSums(self.reduce_non_diagonal_ratio)
            for name in names:
                weights = dict(stream.weights(name, keys))
                tuned = copy.deepcopy(block)
                if not linearized:
                    write_back(tuned, {k[len(block_prefix):]: v for k, v in weights.items()})
                with torch.no_grad(), GramRecorder(tuned, dtype, prefix=block_prefix) as stats:
                    for call in calls[name]:
                        call.run(tuned)
                grams = stats.means()
                for key in keys:
                    if key in grams:
                        sums.add_linear(key, grams.pop(key), weights[key], key in stats.transposed or not self.weight_transpose)
                    else:
                        sums.add_average(key, weights[key])
                sums.count += 1
            block_merged = sums.merged()
            merged |= block_merged
            if index + 1 < len(blocks):
                if not linearized:
                    write_back(block, {k[len(block_prefix):]: v.clone() for k, v in block_merged.items()})
                with torch.no_grad():
                    for name in names:
                        calls[name] = [BlockCall(call.run(block), call.args, call.kwargs) for call in calls[name]]
        return {k: v.to(stream.base[k].device) for k, v in merged.items()}


class RegMeanAlgorithmForCLIPPlusPlus(RegMeanAlgorithmPlusPlus):
    """FusionBench's CLIP class: the CLIP part (heads, preprocessing) is the task pool's job here."""
