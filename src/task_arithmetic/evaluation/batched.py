"""Standard-mode evaluation of many weight edits per pass over the data.

Queries (edit, dataset, split) are grouped by edit: each edit's weights are built once, into
buffers kept for the session (no fresh allocation per edit), and serve every dataset it is asked
on. Edits that need the same datasets are evaluated K at a time on each decoded batch through
`stacked_vit.stacked_forward` (K chosen from a memory budget); the heads run once on the K
outputs. Weights an edit leaves unchanged stay shared, so an unchanged prefix runs once.

Each edit's weights are built with the same floating-point operations, in the same order, as
DirectEvaluator (theta_0 + (c_1 * group_1 + c_2 * group_2 ...)), so they are bit-identical to
the per-edit path's; only the order of operations inside the forward pass differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, cast

import torch
from torch.func import functional_call

from .defaults import DEFAULT_MEMORY_MB
from .direct import DirectEvaluator
from .edits import Edit, Group
from .stacked_vit import StackedWeights, stacked_forward, vit_supported

if TYPE_CHECKING:
    from open_clip.transformer import VisionTransformer

DatasetSplit = tuple[str, str]
EditKey = tuple[tuple[str, float], ...]

# On CPU a stacked activation beyond a few MiB is slower per element than K separate ones (each
# new large tensor is fresh memory to fault in), so K also keeps the largest one under this.
CPU_ACTIVATION_CAP = 8 * 2**20


@dataclass
class EditRequest:
    edit: Edit
    needs: set[DatasetSplit]


class BatchedEvaluator:
    def __init__(self, direct: DirectEvaluator, memory_mb: int = DEFAULT_MEMORY_MB, max_edits: int | None = None):
        self.direct = direct
        self.module = direct.module
        self.memory_bytes = memory_mb * 2**20
        self.max_edits = max_edits
        self.stacked = vit_supported(self.module)
        self.param_names = [name for name, _ in self.module.named_parameters()]
        self._buffers: dict[str, torch.Tensor] = {}
        self._touched: dict[Group, frozenset[str]] = {}
        self.passes = 0  # forward passes over one batch (K edits each), for tests and benchmarks
        self.edits_evaluated = 0

    # sizing -----------------------------------------------------------------------------------
    def edits_per_pass(self, batch_size: int) -> int:
        state0 = self.direct.state0
        param_bytes = sum(state0[n].numel() * state0[n].element_size() for n in self.param_names)
        largest = self._largest_activation_bytes(batch_size)
        # weights, plus about four live activations of the largest size per copy
        k = max(1, self.memory_bytes // (param_bytes + 4 * largest))
        if self.direct.device.type == "cpu":
            k = min(k, max(1, CPU_ACTIVATION_CAP // largest))
        return int(min(k, self.max_edits) if self.max_edits else k)

    def _largest_activation_bytes(self, batch_size: int) -> int:
        if not self.stacked:
            return 1
        vit = cast("VisionTransformer", self.module)  # vit_supported said so
        tokens = vit.grid_size[0] * vit.grid_size[1] + 1
        block = vit.transformer.resblocks[0]
        hidden = max(3 * block.attn.embed_dim, block.mlp.c_fc.out_features)
        return batch_size * tokens * hidden * 4

    # weights ----------------------------------------------------------------------------------
    def _touched_by(self, group: Group) -> frozenset[str]:
        """Parameters the group's vector changes (exact zeros change nothing)."""
        if group not in self._touched:
            vector = self.direct.group_vector(group)
            self._touched[group] = frozenset(n for n in self.param_names if n in vector and bool(vector[n].any()))
        return self._touched[group]

    def _buffer(self, name: str, count: int) -> torch.Tensor:
        value = self.direct.state0[name]
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < count:
            buf = torch.empty((count, *value.shape), dtype=value.dtype, device=value.device)
            self._buffers[name] = buf
        return buf[:count]

    def weights(self, edits: list[Edit]) -> StackedWeights:
        state0 = self.direct.state0
        vectors = {group: self.direct.group_vector(group) for edit in edits for group, _ in edit.terms}
        touched = set().union(*(self._touched_by(group) for edit in edits for group, _ in edit.terms))
        shared = {n: state0[n] for n in self.param_names if n not in touched}
        stacked = {}
        for name in self.param_names:
            if name not in touched:
                continue
            buf = self._buffer(name, len(edits))
            for k, edit in enumerate(edits):
                terms = [(vectors[g][name], c) for g, c in edit.terms if name in self._touched_by(g)]
                if not terms:
                    buf[k].copy_(state0[name])
                    continue
                # DirectEvaluator.direction then theta_0 + direction, operation for operation
                torch.mul(terms[0][0], terms[0][1], out=buf[k])
                for value, coef in terms[1:]:
                    buf[k].add_(value, alpha=coef)
                buf[k].add_(state0[name])
            stacked[name] = buf
        return StackedWeights(len(edits), shared, stacked)

    # evaluation -------------------------------------------------------------------------------
    @torch.inference_mode()
    def evaluate(self, requests: Iterable[EditRequest]) -> dict[tuple[EditKey, str, str], tuple[torch.Tensor, torch.Tensor]]:
        """(logits, labels) of every requested (edit, dataset, split), edits grouped by what they need."""
        by_needs: dict[frozenset[DatasetSplit], list[Edit]] = {}
        for request in requests:
            by_needs.setdefault(frozenset(request.needs), []).append(request.edit)
        out: dict[tuple[EditKey, str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        k = self.edits_per_pass(self.direct.bank.batch_size)
        for needs, edits in by_needs.items():
            for start in range(0, len(edits), k):
                chunk = edits[start : start + k]
                weights = self.weights(chunk)
                for dataset, split in sorted(needs):
                    for edit, result in zip(chunk, self._logits(weights, chunk, dataset, split)):
                        out[(edit.key(), dataset, split)] = result
                self.edits_evaluated += len(chunk)
        return out

    def _logits(self, weights: StackedWeights, edits: list[Edit], dataset: str, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        head = self.direct.heads[dataset]
        per_edit: list[list[torch.Tensor]] = [[] for _ in edits]
        labels = []
        for images, batch_labels in self.direct.bank.loader(dataset, split):
            features = self._features(weights, images.to(self.direct.device))  # [K, B, E]
            k, b = features.shape[:2]
            logits = head(features.reshape(k * b, -1)).float().cpu().view(k, b, -1)
            for i in range(k):
                per_edit[i].append(logits[i])
            labels.append(torch.as_tensor(batch_labels))
            self.passes += 1
        all_labels = torch.cat(labels)
        return [(torch.cat(chunks), all_labels) for chunks in per_edit]

    def _features(self, weights: StackedWeights, images: torch.Tensor) -> torch.Tensor:
        if self.stacked:
            return stacked_forward(self.module, weights, images)
        # Any other architecture: one functional_call per copy, still one data pass and one build.
        buffers = {n: v for n, v in self.direct.state0.items() if n not in weights.shared and n not in weights.stacked}
        outs = []
        for k in range(weights.count):
            params = {n: weights.stacked[n][k] if n in weights.stacked else weights.shared[n] for n in self.param_names}
            outs.append(functional_call(self.module, {**buffers, **params}, (images,)))
        return torch.stack(outs)
