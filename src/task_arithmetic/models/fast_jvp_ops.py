"""Tangent (forward-mode) rules for the layers of a ViT, as autograd functions.

Each function maps input tangents to output tangents at a FIXED primal point (theta_0 and the
primal activations are constants). Every rule is linear in the tangents, so its backward is the
transposed map and needs only primal tensors: no tangent is ever saved for the backward, which is
what keeps the linearised step's memory close to a plain step's. LayerNorm's normalisation and
softmax have symmetric Jacobians, so one fused kernel (the one torch uses for their ordinary
backward) serves both the tangent and its transpose.

A tangent argument of None stands for a zero tangent; the rules skip the work it would cost.
"""

from __future__ import annotations

import torch
from torch.autograd import Function


def _transformed() -> bool:
    """Inside torch.func transforms (vmap over task vectors): some in-place ops lack batching rules."""
    try:
        return torch._C._functorch.maybe_current_level() is not None
    except AttributeError:  # private API moved: take the always-valid out-of-place route
        return True


def _addmm(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # In place saves an output-sized copy per layer (~10 % of the GEMM on CPU).
    return torch.addmm(out, a, b) if _transformed() else out.addmm_(a, b)


def _baddbmm(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.baddbmm(out, a, b) if _transformed() else out.baddbmm_(a, b)


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class LinearTangent(Function):
    """y_t = x_t W0^T + x0 dW^T + db for y = x W^T + b (any leading dims)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x_t, x0, w0, dw, db):
        lead = x0.shape[:-1]
        out = None
        if x_t is not None:
            out = x_t.reshape(-1, x_t.shape[-1]) @ w0.t()
        if dw is not None:
            x2 = x0.reshape(-1, x0.shape[-1])
            out = x2 @ dw.t() if out is None else _addmm(out, x2, dw.t())
        if db is not None:
            out = db.expand(lead.numel(), db.shape[0]).clone() if out is None else out.add_(db)
        return out.reshape(*lead, out.shape[-1])

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[1], inputs[2])

    @staticmethod
    def backward(ctx, grad):
        x0, w0 = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.shape[-1])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = (g2 @ w0).reshape(*x0.shape[:-1], w0.shape[1])
        if ctx.needs_input_grad[3]:
            gw = g2.t() @ x0.reshape(-1, x0.shape[-1])
        if ctx.needs_input_grad[4]:
            gb = g2.sum(0)
        return gx, None, None, gw, gb


def linear_tangent(x_t, x0, w0, dw, db):
    if x_t is None and dw is None and db is None:
        return None
    return LinearTangent.apply(x_t, x0, w0, dw, db)


class LayerNormTangent(Function):
    """y_t = gamma * J_norm(x0) x_t + xhat0 * dgamma + dbeta for y = LN(x) * gamma + beta."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x_t, dgamma, dbeta, x0, mean, rstd, gamma, eps):
        shape = [x0.shape[-1]]
        out = None
        if x_t is not None:
            normed = torch.ops.aten.native_layer_norm_backward(x_t, x0, shape, mean, rstd, None, None, [True, False, False])[0]
            out = normed.mul_(gamma)
        if dgamma is not None:
            # layer_norm with weight dgamma and bias dbeta is exactly xhat0 * dgamma + dbeta, fused.
            affine = torch.nn.functional.layer_norm(x0, shape, dgamma, dbeta, eps)
            out = affine if out is None else out.add_(affine)
        elif dbeta is not None:
            out = dbeta.expand_as(x0).clone() if out is None else out.add_(dbeta)
        return out

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[3:7])

    @staticmethod
    def backward(ctx, grad):
        x0, mean, rstd, gamma = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        if not any(mask):
            return (None,) * 8
        gx, gg, gb = torch.ops.aten.native_layer_norm_backward(
            grad.contiguous(), x0, [x0.shape[-1]], mean, rstd, gamma, gamma, mask
        )
        return gx, gg, gb, None, None, None, None, None


def layer_norm_tangent(x_t, dgamma, dbeta, x0, mean, rstd, gamma, eps: float):
    if x_t is None and dgamma is None and dbeta is None:
        return None
    return LayerNormTangent.apply(x_t, dgamma, dbeta, x0, mean, rstd, gamma, eps)


class GeluTangent(Function):
    """h_t * gelu'(h0), with torch's fused gelu backward kernel in both directions."""

    generate_vmap_rule = True

    @staticmethod
    def forward(h_t, h0, approximate):
        return torch.ops.aten.gelu_backward(h_t, h0, approximate=approximate)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])
        ctx.approximate = inputs[2]

    @staticmethod
    def backward(ctx, grad):
        (h0,) = ctx.saved_tensors
        return torch.ops.aten.gelu_backward(grad, h0, approximate=ctx.approximate), None, None


class AttentionTangent(Function):
    """Tangent of O = softmax(scale q k^T) v at a fixed (q, k, v); tensors are [batch*heads, tokens, dim].

    O_t = A_t v + A v_t with A_t = softmax'(S) S_t and S_t = scale (q_t k^T + q k_t^T). Only the
    primal q, k, v and attention matrix A are kept for the backward.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(q_t, k_t, v_t, q, k, v, attn, scale):
        s_t = None
        if q_t is not None:
            s_t = torch.bmm(q_t, k.transpose(1, 2))
        if k_t is not None:
            s_t = torch.bmm(q, k_t.transpose(1, 2)) if s_t is None else _baddbmm(s_t, q, k_t.transpose(1, 2))
        out = None
        if s_t is not None:
            a_t = torch._softmax_backward_data(s_t, attn, -1, attn.dtype)
            out = torch.bmm(a_t, v).mul_(scale)
        if v_t is not None:
            out = torch.bmm(attn, v_t) if out is None else _baddbmm(out, attn, v_t)
        return out

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[3:7])
        ctx.scale = inputs[7]

    @staticmethod
    def backward(ctx, grad):
        q, k, v, attn = ctx.saved_tensors
        gq = gk = gv = None
        if ctx.needs_input_grad[2]:
            gv = torch.bmm(attn.transpose(1, 2), grad)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            g_a = torch.bmm(grad, v.transpose(1, 2))
            g_s = torch._softmax_backward_data(g_a, attn, -1, attn.dtype).mul_(ctx.scale)
            if ctx.needs_input_grad[0]:
                gq = torch.bmm(g_s, k)
            if ctx.needs_input_grad[1]:
                gk = torch.bmm(g_s.transpose(1, 2), q)
        return gq, gk, gv, None, None, None, None, None


def attention_tangent(q_t, k_t, v_t, q, k, v, attn, scale: float):
    if q_t is None and k_t is None and v_t is None:
        return None
    return AttentionTangent.apply(q_t, k_t, v_t, q, k, v, attn, scale)


def add_tangents(*tangents: torch.Tensor | None) -> torch.Tensor | None:
    out = None
    for t in tangents:
        out = _add(out, t)
    return out
