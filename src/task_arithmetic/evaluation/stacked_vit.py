"""K edited copies of open_clip's VisionTransformer in one forward pass over one batch of images.

Weights come as a StackedWeights: per parameter either one tensor shared by every copy (the
edits leave it unchanged) or a [K, ...] stack. Activations carry a leading copy dimension that
stays 1 while every weight used so far is shared, so the unchanged prefix of the network (often
the patch embedding) runs once for all K copies. Matrix products loop over the copies (one GEMM
each, as fast as a batched one here); layer norms, attention and activations run once over the
whole stack, which is where K separate passes lose most of their time on small models.

Structure checks are those of the fast JVP (`vit_supported`): anything else uses one
functional_call per copy instead (evaluation/batched.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU, ResidualAttentionBlock, VisionTransformer
from torch import nn

from ..models.fast_jvp_vit import vit_supported

__all__ = ["StackedWeights", "stacked_forward", "vit_supported"]


@dataclass
class StackedWeights:
    """Weights of K copies: `stacked[name]` is [K, *shape]; names absent from it use `shared[name]`."""

    count: int
    shared: dict[str, torch.Tensor]
    stacked: dict[str, torch.Tensor]

    def get(self, name: str) -> torch.Tensor:
        return self.stacked[name] if name in self.stacked else self.shared[name]

    def is_stacked(self, name: str) -> bool:
        return name in self.stacked


def _per_copy(w: StackedWeights, name: str, trailing: int) -> torch.Tensor:
    """The weight shaped to broadcast against [copies, batch, tokens, ...] activations."""
    value = w.get(name)
    if not w.is_stacked(name):
        return value
    return value.view(value.shape[0], *([1] * trailing), *value.shape[1:])


def _layer_norm(w: StackedWeights, name: str, eps: float, x: torch.Tensor) -> torch.Tensor:
    gamma, beta = f"{name}.weight", f"{name}.bias"
    if not (w.is_stacked(gamma) or w.is_stacked(beta)):
        return F.layer_norm(x, (x.shape[-1],), w.get(gamma), w.get(beta), eps)
    trailing = x.dim() - 2  # dimensions between the copy axis and the features
    normed = F.layer_norm(x, (x.shape[-1],), None, None, eps)
    return torch.addcmul(_per_copy(w, beta, trailing), normed, _per_copy(w, gamma, trailing))


def _linear(w: StackedWeights, weight: str, bias: str, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """x [C, ..., Din] times each copy's weight (optionally only its `rows` outputs)."""
    W, b = w.get(weight), w.get(bias)
    if not (w.is_stacked(weight) or w.is_stacked(bias)):
        if rows is not None:
            W, b = W[rows], b[rows]
        return F.linear(x, W, b)
    k = w.count
    rows = rows if rows is not None else slice(None)
    lead = x.shape[1:-1]
    out_features = (W[0] if w.is_stacked(weight) else W)[rows].shape[0]
    # autocast does not apply to out= calls: cast as it would (--precision bf16), explicitly
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    out = x.new_empty((k, *lead, out_features), dtype=dtype)
    for i in range(k):
        Wi = (W[i] if w.is_stacked(weight) else W)[rows]
        bi = (b[i] if w.is_stacked(bias) else b)[rows]
        xi = x[i if x.shape[0] > 1 else 0]
        # written in place: no stacking copy of the K outputs
        torch.addmm(bi.to(dtype), xi.reshape(-1, xi.shape[-1]).to(dtype), Wi.t().to(dtype), out=out[i].view(-1, out_features))
    return out


def _attention(blk: ResidualAttentionBlock, w: StackedWeights, pre: str, y: torch.Tensor, last: bool) -> torch.Tensor:
    """Self-attention over [C, B, L, D]; when `last`, only the class token's output (all that is read)."""
    attn = blk.attn
    width, heads = attn.embed_dim, attn.num_heads
    copies, batch, tokens, _ = y.shape
    win, bin_, out = f"{pre}attn.in_proj_weight", f"{pre}attn.in_proj_bias", f"{pre}attn.out_proj"

    def split(t: torch.Tensor, parts: int) -> list[torch.Tensor]:
        # [C, B, L, parts*D] -> parts x [C*B, heads, L, D/heads]
        c, n = t.shape[0], t.shape[2]
        return list(t.reshape(c * batch, n, parts, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0))

    if last:
        (q,) = split(_linear(w, win, bin_, y[:, :, :1], slice(0, width)), 1)
        k, v = split(_linear(w, win, bin_, y, slice(width, 3 * width)), 2)
    else:
        q, k, v = split(_linear(w, win, bin_, y), 3)
    c = max(q.shape[0], k.shape[0]) // batch
    if q.shape[0] != k.shape[0]:  # one side still shared: broadcast the copies
        q, k, v = (t.expand(c * batch, *t.shape[1:]) for t in (q, k, v))
    o = F.scaled_dot_product_attention(q, k, v)  # [C*B, heads, Lq, D/heads]
    o = o.transpose(1, 2).reshape(c, batch, o.shape[2], width)
    return _linear(w, f"{out}.weight", f"{out}.bias", o)


def _activation(act: QuickGELU | nn.GELU, h: torch.Tensor) -> torch.Tensor:
    if type(act) is QuickGELU:
        return h * torch.sigmoid(1.702 * h)
    return F.gelu(h, approximate=act.approximate)


def _block(blk: ResidualAttentionBlock, w: StackedWeights, pre: str, x: torch.Tensor, last: bool) -> torch.Tensor:
    a = _attention(blk, w, pre, _layer_norm(w, f"{pre}ln_1", blk.ln_1.eps, x), last)
    if last:
        x = x[:, :, :1]
    x = x + a
    h = _linear(w, f"{pre}mlp.c_fc.weight", f"{pre}mlp.c_fc.bias", _layer_norm(w, f"{pre}ln_2", blk.ln_2.eps, x))
    return x + _linear(w, f"{pre}mlp.c_proj.weight", f"{pre}mlp.c_proj.bias", _activation(blk.mlp.gelu, h))


def _embed(vit: VisionTransformer, w: StackedWeights, images: torch.Tensor) -> torch.Tensor:
    conv = vit.conv1
    batch = images.shape[0]
    weight = w.get("conv1.weight")
    if w.is_stacked("conv1.weight"):
        # one convolution with every copy's filters side by side: the images are read once
        k, width = weight.shape[:2]
        patches = F.conv2d(images, weight.reshape(k * width, *weight.shape[2:]), stride=conv.stride)
        patches = patches.reshape(batch, k, width, -1).permute(1, 0, 3, 2)
    else:
        width = weight.shape[0]
        patches = F.conv2d(images, weight, stride=conv.stride).reshape(1, batch, width, -1).transpose(2, 3)
    cls = _per_copy(w, "class_embedding", 0)
    cls = cls.view(-1, 1, 1, width)
    copies = max(patches.shape[0], cls.shape[0])
    x = torch.cat([cls.expand(copies, batch, 1, width), patches.expand(copies, *patches.shape[1:])], dim=2)
    x = x + _per_copy(w, "positional_embedding", 1)
    if isinstance(vit.ln_pre, nn.Identity):
        return x
    return _layer_norm(w, "ln_pre", vit.ln_pre.eps, x)


@torch.inference_mode()
def stacked_forward(vit: VisionTransformer, w: StackedWeights, images: torch.Tensor) -> torch.Tensor:
    """[K, B, embed_dim]: the K copies' embeddings (before normalisation) of the same images.

    Only for modules that pass `vit_supported` (checked by the caller, once)."""
    x = _embed(vit, w, images)
    blocks = vit.transformer.resblocks
    for i, blk in enumerate(blocks):
        x = _block(blk, w, f"transformer.resblocks.{i}.", x, last=i == len(blocks) - 1)
    # Only the class token is pooled and LayerNorm is per token: pool first, then normalise.
    x = _layer_norm(w, "ln_post", vit.ln_post.eps, x[:, :, 0])
    if vit.proj is not None:
        proj = w.get("proj")
        x = torch.matmul(x, proj)  # [C, B, D] @ [D, E] or [K, D, E]
    return x.expand(w.count, *x.shape[1:])
