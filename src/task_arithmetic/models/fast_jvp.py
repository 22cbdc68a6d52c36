"""Fast linearisation of open_clip ViT image encoders; `select_jvp` picks it when `supports` says so.

Same contract as `linearize.functorch_jvp`: (f(x; theta_0), J_theta0 f(x) . delta), gradients flow
into `delta` only, params0 are constants, parameters absent from `delta` do not move. It is cheaper
because the primal pass needs no autograd at all and the tangent's backward keeps only primal
activations (see fast_jvp_vit and fast_jvp_ops).

Measured on ViT-B-32 (CPU, benchmarks/bench_linearize.py): the linearised step costs ~1.55x a
plain step (torch.func: ~2.4x) at ~1.04x its peak memory. Kept: custom autograd functions for the
attention, LayerNorm and linear tangents (each 1-3 % faster than plain autograd ops, and they save
no tangent for the backward) and computing only the class token in the last block. Not kept:
torch.compile of the whole path (2-4 % faster on B-32 after ~110 s of compilation per shape).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .fast_jvp_vit import Weights, vit_jvp, vit_supported
from .jvp_reference import functorch_jvp


def _find_vit(module: nn.Module) -> tuple[nn.Module, str] | None:
    """The VisionTransformer that computes `module`'s forward, and its parameter-name prefix."""
    from .encoder import ImageEncoder  # late: encoder imports the factory, which is heavy

    if type(module) is ImageEncoder:
        if module._forward_hooks or module._forward_pre_hooks or list(module._modules) != ["visual"]:
            return None
        return module.visual, "visual."
    return module, ""


def supports(module: nn.Module) -> bool:
    """True for the open_clip ViT structures the fast path reproduces exactly; False otherwise."""
    found = _find_vit(module)
    return found is not None and vit_supported(found[0])


def _compute_dtype(inputs: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.dtype:
    # Under autocast, matrix products run in the autocast dtype there too; we make that explicit
    # (autocast itself is switched off inside) so custom autograd functions see consistent dtypes.
    device = inputs.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return next(iter(params.values())).dtype


def linearized_forward(
    module: nn.Module, params0: dict[str, torch.Tensor], delta: Mapping[str, torch.Tensor], inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x; theta_0), J f(x) . delta), falling back to torch.func for anything not supported."""
    found = _find_vit(module)
    if found is None or not vit_supported(found[0]) or inputs.requires_grad:
        return functorch_jvp(module, params0, delta, inputs)
    vit, prefix = found
    dtype = _compute_dtype(inputs, dict(vit.named_parameters()) if not params0 else params0)
    weights = Weights(module, params0, delta, prefix, dtype)
    with torch.autocast(inputs.device.type, enabled=False):
        out0, tangent = vit_jvp(vit, weights, inputs)
    if tangent is None:
        tangent = torch.zeros_like(out0)
    return out0, tangent
