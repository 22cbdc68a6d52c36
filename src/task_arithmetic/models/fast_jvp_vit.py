"""Hand-written JVP of open_clip's VisionTransformer: primal under no_grad, tangent by hand.

The primal pass f(x; theta_0) does not depend on the trained parameters, so it runs without
autograd; only the tangent J f(x) . delta builds a graph, through the rules of fast_jvp_ops whose
backward keeps nothing but primal activations. Structure checks live here too: anything this file
does not reproduce exactly makes `vit_supported` False, and the caller falls back to torch.func.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm as OpenClipLayerNorm
from open_clip.transformer import QuickGELU, ResidualAttentionBlock, Transformer, VisionTransformer
from torch import nn
from torch.utils.checkpoint import checkpoint

from .fast_jvp_ops import GeluTangent, add_tangents, attention_tangent, layer_norm_tangent, linear_tangent

_LAYER_NORMS = (nn.LayerNorm, OpenClipLayerNorm)
_LINEARS = (nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear)


class Weights:
    """theta_0 as constants and delta as (differentiable) tangents, looked up by module-relative name.

    Missing theta_0 entries fall back to the module's own parameters, as functional_call does.
    """

    def __init__(self, module: nn.Module, params0: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor], prefix: str, dtype: torch.dtype):
        self.own = dict(module.named_parameters())
        unknown = sorted(set(delta) - set(self.own))
        if unknown:
            raise KeyError(f"delta has entries that are not parameters of the module: {unknown[:3]}")
        self.params0, self.delta, self.prefix, self.dtype = params0, delta, prefix, dtype

    def p(self, name: str) -> torch.Tensor:
        full = self.prefix + name
        value = self.params0.get(full, self.own[full])
        return value.detach().to(self.dtype)

    def d(self, name: str) -> torch.Tensor | None:
        value = self.delta.get(self.prefix + name)
        return None if value is None else value.to(self.dtype)


def _plain_layer_norm(m: object) -> bool:
    # isinstance only narrows the type for mypy; the exact-type test is the real check.
    return isinstance(m, nn.LayerNorm) and type(m) in _LAYER_NORMS and m.weight is not None and m.bias is not None and len(m.normalized_shape) == 1


def _block_supported(blk: nn.Module, width: int) -> bool:
    if type(blk) is not ResidualAttentionBlock or hasattr(blk, "ln_1_kv"):
        return False
    if not (isinstance(blk.ls_1, nn.Identity) and isinstance(blk.ls_2, nn.Identity)):
        return False
    if not (_plain_layer_norm(blk.ln_1) and _plain_layer_norm(blk.ln_2)):
        return False
    attn = blk.attn
    if type(attn) is not nn.MultiheadAttention or not attn.batch_first or not attn._qkv_same_embed_dim:
        return False
    if attn.bias_k is not None or attn.bias_v is not None or attn.add_zero_attn or attn.dropout != 0.0:
        return False
    if attn.in_proj_weight is None or attn.in_proj_bias is None or attn.embed_dim != width:
        return False
    if type(attn.out_proj) not in _LINEARS or attn.out_proj.bias is None:
        return False
    mlp = blk.mlp
    if type(mlp) is not nn.Sequential or list(mlp._modules) != ["c_fc", "gelu", "c_proj"]:
        return False
    if type(mlp.c_fc) is not nn.Linear or type(mlp.c_proj) is not nn.Linear or mlp.c_fc.bias is None or mlp.c_proj.bias is None:
        return False
    act = mlp.gelu
    return type(act) is QuickGELU or (type(act) is nn.GELU and act.approximate in ("none", "tanh"))


def _has_hooks(module: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def vit_supported(vit: nn.Module) -> bool:
    """True only for the exact open_clip ViT structure this file reproduces."""
    if type(vit) is not VisionTransformer or vit.output_tokens or vit.attn_pool is not None:
        return False
    if vit.pool_type != "tok" or not isinstance(vit.patch_dropout, nn.Identity) or _has_hooks(vit):
        return False
    conv = vit.conv1
    if type(conv) is not nn.Conv2d or conv.kernel_size != conv.stride or conv.groups != 1:
        return False
    if conv.padding != (0, 0) or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        return False
    width = conv.out_channels
    if not (isinstance(vit.ln_pre, nn.Identity) or _plain_layer_norm(vit.ln_pre)) or not _plain_layer_norm(vit.ln_post):
        return False
    if vit.class_embedding.shape != (width,) or vit.positional_embedding.dim() != 2:
        return False
    transformer = vit.transformer
    if type(transformer) is not Transformer or not transformer.batch_first:
        return False
    if not all(p.is_floating_point() for p in vit.parameters()):
        return False
    return all(_block_supported(blk, width) for blk in transformer.resblocks)


def _split_heads(t: torch.Tensor, parts: int, heads: int) -> list[torch.Tensor]:
    """[B, L, parts*D] -> `parts` tensors [B*heads, L, D/heads] (one copy for all parts)."""
    b, n, _ = t.shape
    t = t.view(b, n, parts, heads, -1).permute(2, 0, 3, 1, 4).reshape(parts, b * heads, n, -1)
    return list(t.unbind(0))


def _merge_heads(t: torch.Tensor, batch: int) -> torch.Tensor:
    bh, n, hd = t.shape
    heads = bh // batch
    return t.view(batch, heads, n, hd).transpose(1, 2).reshape(batch, n, heads * hd)


def _layer_norm(m: nn.LayerNorm, w: Weights, name: str, x0: torch.Tensor, x_t: torch.Tensor | None):
    gamma, beta = w.p(f"{name}.weight"), w.p(f"{name}.bias")
    with torch.no_grad():
        y0, mean, rstd = torch.native_layer_norm(x0, [x0.shape[-1]], gamma, beta, m.eps)
    y_t = layer_norm_tangent(
        None if x_t is None else x_t.contiguous(), w.d(f"{name}.weight"), w.d(f"{name}.bias"), x0, mean, rstd, gamma, m.eps
    )
    return y0, y_t


def _linear(w: Weights, weight: str, bias: str, x0: torch.Tensor, x_t: torch.Tensor | None):
    return _linear_with(w.p(weight), w.p(bias), w.d(weight), w.d(bias), x0, x_t)


def _linear_with(
    w0: torch.Tensor, b0: torch.Tensor, dw: torch.Tensor | None, db: torch.Tensor | None, x0: torch.Tensor, x_t: torch.Tensor | None
):
    with torch.no_grad():
        y0 = F.linear(x0, w0, b0)
    return y0, linear_tangent(x_t, x0, w0, dw, db)


def _rows(t: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    return None if t is None else t[rows]


def _attention(blk: ResidualAttentionBlock, w: Weights, pre: str, y0: torch.Tensor, y_t: torch.Tensor | None, last: bool):
    """Self-attention; when `last`, only the class token's output is produced (all the caller reads)."""
    attn = blk.attn
    batch, width, heads = y0.shape[0], attn.embed_dim, attn.num_heads
    scale = (width // heads) ** -0.5
    win, bin_ = f"{pre}attn.in_proj_weight", f"{pre}attn.in_proj_bias"
    if last:
        w0, b0, dw, db = w.p(win), w.p(bin_), w.d(win), w.d(bin_)
        q_rows, kv_rows = slice(0, width), slice(width, 3 * width)
        q0, q_t = _linear_with(
            w0[q_rows], b0[q_rows], _rows(dw, q_rows), _rows(db, q_rows), y0[:, :1], None if y_t is None else y_t[:, :1]
        )
        kv0, kv_t = _linear_with(w0[kv_rows], b0[kv_rows], _rows(dw, kv_rows), _rows(db, kv_rows), y0, y_t)
        del dw, db
        with torch.no_grad():
            (q,), (k, v) = _split_heads(q0, 1, heads), _split_heads(kv0, 2, heads)
        q_t = None if q_t is None else _split_heads(q_t, 1, heads)[0]
        k_t, v_t = (None, None) if kv_t is None else _split_heads(kv_t, 2, heads)
    else:
        qkv0, qkv_t = _linear(w, win, bin_, y0, y_t)
        with torch.no_grad():
            q, k, v = _split_heads(qkv0, 3, heads)
        q_t, k_t, v_t = (None, None, None) if qkv_t is None else _split_heads(qkv_t, 3, heads)
    with torch.no_grad():
        probs = torch.bmm(q, k.transpose(1, 2)).mul_(scale).softmax(-1)
        o0 = _merge_heads(torch.bmm(probs, v), batch)
    o_t = attention_tangent(q_t, k_t, v_t, q, k, v, probs, scale)
    o_t = None if o_t is None else _merge_heads(o_t, batch)
    return _linear(w, f"{pre}attn.out_proj.weight", f"{pre}attn.out_proj.bias", o0, o_t)


def _activation(act: QuickGELU | nn.GELU, h0: torch.Tensor, h_t: torch.Tensor | None):
    with torch.no_grad():
        if type(act) is QuickGELU:
            sig = torch.sigmoid(1.702 * h0)
            z0 = h0 * sig
            # d/dh [h sigma(a h)] = sigma + a h sigma (1 - sigma)
            slope = sig + 1.702 * z0 * (1 - sig) if h_t is not None else None
        else:
            z0 = F.gelu(h0, approximate=act.approximate)
    if h_t is None:
        return z0, None
    if type(act) is QuickGELU:
        assert slope is not None  # set above whenever h_t is given
        return z0, h_t * slope
    return z0, GeluTangent.apply(h_t, h0, act.approximate)


def _block(blk: ResidualAttentionBlock, w: Weights, pre: str, x0: torch.Tensor, x_t: torch.Tensor | None, last: bool):
    y0, y_t = _layer_norm(blk.ln_1, w, f"{pre}ln_1", x0, x_t)
    a0, a_t = _attention(blk, w, pre, y0, y_t, last)
    if last:
        x0 = x0[:, :1]
        x_t = None if x_t is None else x_t[:, :1]
    with torch.no_grad():
        x0 = x0 + a0
    x_t = add_tangents(x_t, a_t)
    y0, y_t = _layer_norm(blk.ln_2, w, f"{pre}ln_2", x0, x_t)
    h0, h_t = _linear(w, f"{pre}mlp.c_fc.weight", f"{pre}mlp.c_fc.bias", y0, y_t)
    z0, z_t = _activation(blk.mlp.gelu, h0, h_t)
    m0, m_t = _linear(w, f"{pre}mlp.c_proj.weight", f"{pre}mlp.c_proj.bias", z0, z_t)
    with torch.no_grad():
        x0 = x0 + m0
    return x0, add_tangents(x_t, m_t)


def _embed(vit: VisionTransformer, w: Weights, images: torch.Tensor):
    conv = vit.conv1
    has_bias = conv.bias is not None
    w0 = w.p("conv1.weight")
    b0 = w.p("conv1.bias") if has_bias else None
    with torch.no_grad():
        x0 = F.conv2d(images, w0, b0, stride=conv.stride)
    dw = w.d("conv1.weight")
    db = w.d("conv1.bias") if has_bias else None
    x_t = None
    if dw is not None or db is not None:
        x_t = F.conv2d(images, dw if dw is not None else torch.zeros_like(w0), db, stride=conv.stride)
    batch, width = x0.shape[:2]

    def tokens(patches: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        patches = patches.reshape(batch, width, -1).transpose(1, 2)
        return torch.cat([cls.view(1, 1, width).expand(batch, 1, width), patches], dim=1)

    with torch.no_grad():
        x0 = tokens(x0, w.p("class_embedding")) + w.p("positional_embedding")
    d_cls, d_pos = w.d("class_embedding"), w.d("positional_embedding")
    if x_t is not None or d_cls is not None:
        x_t = tokens(
            x_t if x_t is not None else x0.new_zeros(batch, width, x0.shape[1] - 1),
            d_cls if d_cls is not None else x0.new_zeros(width),
        )
    if d_pos is not None:
        x_t = d_pos.expand_as(x0) if x_t is None else x_t + d_pos
    if isinstance(vit.ln_pre, nn.Identity):
        return x0, x_t
    return _layer_norm(vit.ln_pre, w, "ln_pre", x0, x_t)


def vit_jvp(vit: VisionTransformer, w: Weights, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(f(x; theta_0), J f(x) . delta) for a VisionTransformer that passed `vit_supported`."""
    x0, x_t = _embed(vit, w, images.to(w.dtype))
    blocks = vit.transformer.resblocks
    # open_clip's own switch (VisionTransformer.set_grad_checkpointing): each block keeps only its
    # inputs and recomputes its primal and tangent in the backward. Recomputation repeats the same
    # kernels on the same inputs, so the gradients are those of the plain path.
    recompute = bool(getattr(vit.transformer, "grad_checkpointing", False)) and torch.is_grad_enabled()
    for i, blk in enumerate(blocks):
        last = i == len(blocks) - 1
        if recompute and x_t is not None and x_t.requires_grad:
            x0, x_t = checkpoint(_block, blk, w, f"transformer.resblocks.{i}.", x0, x_t, last, use_reentrant=False)
        else:
            x0, x_t = _block(blk, w, f"transformer.resblocks.{i}.", x0, x_t, last=last)
    # Only the class token is pooled and LayerNorm is per token, so LN-then-pool equals pool-then-LN.
    x0 = x0[:, 0]
    x_t = None if x_t is None else x_t[:, 0]
    x0, x_t = _layer_norm(vit.ln_post, w, "ln_post", x0, x_t)
    if vit.proj is None:
        return x0, x_t
    proj0, d_proj = w.p("proj"), w.d("proj")
    with torch.no_grad():
        out0 = x0 @ proj0
    return out0, linear_tangent(x_t, x0, proj0.t(), None if d_proj is None else d_proj.t(), None)
