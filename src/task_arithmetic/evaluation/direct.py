"""Direct evaluation: run the edited encoder (standard) or its JVP (linear / post-hoc) per edit.

Weights are combined in memory: each group of task vectors an edit uses is summed once from
disk and kept (a few at a time), so a sweep over coefficients never reloads checkpoints.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from torch.func import functional_call

from ..models.heads import ClassificationHead
from ..models.linearize import select_jvp
from ..vectors.streaming import sum_checkpoints
from .accuracy import EmbedFn, collect_logits
from .data import DataBank
from .edits import Edit, Group

# Groups of summed task vectors kept in memory: enough for a pair plus the sum of all tasks.
MAX_GROUPS_IN_MEMORY = 4


class DirectEvaluator:
    def __init__(
        self,
        module: nn.Module,
        theta0_path: Path,
        checkpoints: Mapping[str, Path],
        heads: Mapping[str, ClassificationHead],
        bank: DataBank,
        linearized: bool,
        device: torch.device,
    ):
        self.module = module.eval()
        self.theta0_path = Path(theta0_path)
        self.checkpoints = dict(checkpoints)
        self.heads = heads
        self.bank = bank
        self.linearized = linearized
        self.device = device
        self.state0 = {k: v.detach() for k, v in module.state_dict().items()}
        self.params0 = {k: v.detach() for k, v in module.named_parameters()}
        self.jvp_fn = select_jvp(module)
        self._groups: OrderedDict[Group, dict[str, torch.Tensor]] = OrderedDict()

    def group_vector(self, group: Group) -> dict[str, torch.Tensor]:
        if group in self._groups:
            self._groups.move_to_end(group)
            return self._groups[group]
        vector = sum_checkpoints([self.checkpoints[t] for t in group], self.theta0_path, device=self.device).tensors
        self._groups[group] = vector
        while len(self._groups) > MAX_GROUPS_IN_MEMORY:
            self._groups.popitem(last=False)
        return vector

    def direction(self, edit: Edit) -> dict[str, torch.Tensor]:
        """sum_k coef_k * group_k, the weight difference of the edit."""
        total: dict[str, torch.Tensor] = {}
        for group, coef in edit.terms:
            for key, value in self.group_vector(group).items():
                if key in total:
                    total[key].add_(value, alpha=coef)
                else:
                    total[key] = value * coef
        return total

    def embed_fn(self, edit: Edit) -> EmbedFn:
        if not edit.terms:
            return self.module
        return self.embed_delta(self.direction(edit))

    def embed_weights(self, weights: Mapping[str, torch.Tensor]) -> EmbedFn:
        """Any weights theta of this encoder (a merge), read out as this evaluator's runs are."""
        return self.embed_delta({k: weights[k].to(self.device) - v for k, v in self.state0.items() if k in weights and v.is_floating_point()})

    def embed_delta(self, delta: dict[str, torch.Tensor]) -> EmbedFn:
        """theta_0 + delta: f(x; theta_0 + delta), or f(x; theta_0) + J delta for linearised runs."""
        if self.linearized:
            delta = {k: v for k, v in delta.items() if k in self.params0}

            def linear_embed(images: torch.Tensor) -> torch.Tensor:
                out0, tangent = self.jvp_fn(self.module, self.params0, delta, images)
                return out0 + tangent

            return linear_embed
        weights = {k: (v + delta[k]) if k in delta else v for k, v in self.state0.items()}
        return lambda images: functional_call(self.module, weights, (images,))

    def logits(self, edit: Edit, dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return collect_logits(self.embed_fn(edit), self.heads[dataset], self.bank.loader(dataset, split), self.device)

    @torch.inference_mode()
    def tangent_norm_mean(self, task: str, dataset: str, split: str) -> float:
        """mean_x ||J_theta0 f(x) . tau_task|| over the dataset, one JVP pass."""
        delta = {k: v for k, v in self.group_vector((task,)).items() if k in self.params0}
        total, count = 0.0, 0
        for images, _ in self.bank.loader(dataset, split):
            _, tangent = self.jvp_fn(self.module, self.params0, delta, images.to(self.device))
            total += tangent.float().norm(dim=-1).sum().item()
            count += tangent.shape[0]
        return total / max(count, 1)

