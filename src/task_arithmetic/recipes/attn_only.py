"""Attention-only fine-tuning ("Fine-Tuning Attention Modules Only: Enhancing Weight
Disentanglement in Task Arithmetic", ICLR 2025, arXiv 2407.07089).

Standard (non-linear) fine-tuning in which only the attention projection weights of every block
train: the packed query/key/value projection and the output projection of each
nn.MultiheadAttention. Their biases, the MLPs, LayerNorms, embeddings and the final projection
stay at theta_0, so the task vector is zero outside those matrices.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..lazy import nn  # imported on first use: every script's parser reads the plug-ins
from .base import CalibrationBatches, NoOptionsMode, NoSettings, Readout, UpdateRule
from .basic import NoRegularizer
from .identity import Group, Recipe, RunId

PROJECTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight")


def attention_weight_names(module: nn.Module) -> list[str]:
    """Parameter names of every attention block's projection matrices in `module`."""
    names = []
    for prefix, sub in module.named_modules():
        if isinstance(sub, nn.MultiheadAttention):
            own = dict(sub.named_parameters())
            names += [f"{prefix}.{n}" if prefix else n for n in PROJECTION_WEIGHTS if n in own and own[n] is not None]
    return names


class _Counted(UpdateRule):
    def __init__(self, tensors: int, entries: int, total: int):
        self.facts = {"trainable_tensors": tensors, "trainable_entries": entries, "total_entries": total}

    def summary(self) -> dict[str, Any]:
        return self.facts


class AttnOnly(NoOptionsMode):
    name = "attn_only"
    summary = "attention-only FT"

    def recipes(self) -> tuple[Recipe, ...]:
        return (Recipe("attn_only", RunId(self, NoRegularizer()), Readout.NONLINEAR, Group.FIELD, "attention-only FT"),)

    def prepare(self, trainee: Any, settings: NoSettings, calibration: CalibrationBatches) -> UpdateRule:
        chosen = set(attention_weight_names(trainee.visual))
        if not chosen:
            raise UserError(f"--mode attn_only found no nn.MultiheadAttention in the image encoder of {type(trainee.visual).__name__}; use another --mode")
        total = entries = 0
        for name, p in trainee.visual.named_parameters():
            p.requires_grad_(name in chosen)
            total += p.numel()
            entries += p.numel() if name in chosen else 0
        return _Counted(len(chosen), entries, total)


PLUGINS = (AttnOnly(),)
