"""What the data-based merges (RegMean, RegMean++) observe inside a model: the inputs of its linear
maps, summed into Gram matrices X^T X batch by batch, and the repeated blocks of a transformer.

Linear maps, by their weight's state-dict key:
- every nn.Linear called as a module (HF CLIP's q/k/v/out projections and MLP layers, open_clip's
  MLP layers): its input;
- nn.MultiheadAttention (open_clip's attention): the packed in_proj_weight sees the block's
  normalised tokens; out_proj is not called as a module there, so its input, the attention
  output, is recomputed in the hook from the same tokens (self-attention without masks, as in a
  vision tower);
- open_clip VisionTransformer's `proj` (pooled @ proj, a weight stored as (in, out)): the pooled
  class token, read after ln_post.
Rows are tokens (batch x sequence), as FusionBench's hooks flatten them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

if TYPE_CHECKING:
    from open_clip.transformer import VisionTransformer


@dataclass
class GramStats:
    """sum X^T X per linear map and the number of rows behind it; `transposed` maps store W as (in, out)."""

    grams: dict[str, torch.Tensor] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    transposed: set[str] = field(default_factory=set)

    def add(self, key: str, x: torch.Tensor, dtype: torch.dtype) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).to(dtype)
        gram = x.T @ x
        if key in self.grams:
            self.grams[key] += gram
            self.rows[key] += x.shape[0]
        else:
            self.grams[key] = gram
            self.rows[key] = x.shape[0]

    def means(self) -> dict[str, torch.Tensor]:
        """X^T X / rows, in place: FusionBench's regmean weights (it keeps a running mean of the same)."""
        for key, gram in self.grams.items():
            gram.div_(self.rows[key])
        return self.grams


def _attention_input(mha: nn.MultiheadAttention, args: tuple, kwargs: dict) -> torch.Tensor:
    query = args[0] if args else kwargs["query"]
    key = args[1] if len(args) > 1 else kwargs.get("key", query)
    value = args[2] if len(args) > 2 else kwargs.get("value", query)
    unsupported = (
        key is not query or value is not query or kwargs.get("attn_mask") is not None or kwargs.get("key_padding_mask") is not None
        or not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn
    )
    if unsupported:
        raise UserError("RegMean reads attention inputs of self-attention without masks (a vision tower); this model's attention is of another kind")
    return query if mha.batch_first else query.transpose(0, 1)


def attention_output(mha: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """The heads' concatenated output for batch-first tokens x: what out_proj multiplies."""
    batch, length, width = x.shape
    heads = mha.num_heads
    q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width)


def _pooled_before_proj(vit: VisionTransformer, normed: torch.Tensor) -> torch.Tensor:
    """open_clip's VisionTransformer: ln_post's output -> the vector multiplied by proj."""
    if getattr(vit, "final_ln_after_pool", False):
        return normed
    return vit._global_pool(normed)[0]


def _is_open_clip_vit(module: nn.Module) -> bool:
    return (
        type(module).__name__ == "VisionTransformer" and isinstance(getattr(module, "proj", None), nn.Parameter)
        and hasattr(module, "ln_post") and hasattr(module, "_global_pool") and getattr(module, "attn_pool", None) is None
    )


class GramRecorder:
    """Context manager: while open, every forward of `model` adds its linear maps' input Grams to
    `stats`, keyed `prefix` + the weight's name inside `model`."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, prefix: str = ""):
        self.model, self.dtype, self.prefix = model, dtype, prefix
        self.stats = GramStats()
        self._handles: list[Any] = []

    def __enter__(self) -> GramStats:
        inside_attention = set()
        for name, module in self.model.named_modules():
            if isinstance(module, nn.MultiheadAttention):
                inside_attention.add(f"{name}.out_proj" if name else "out_proj")
                self._handles.append(module.register_forward_hook(self._attention_hook(name), with_kwargs=True))
        for name, module in self.model.named_modules():
            if isinstance(module, nn.Linear) and name not in inside_attention:
                self._handles.append(module.register_forward_hook(self._linear_hook(self._key(name, "weight"))))
            elif _is_open_clip_vit(module):
                self._handles.append(module.ln_post.register_forward_hook(self._proj_hook(module, self._key(name, "proj"))))
                self.stats.transposed.add(self._key(name, "proj"))
        return self.stats

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _key(self, module_name: str, attribute: str) -> str:
        return f"{self.prefix}{module_name}.{attribute}" if module_name else f"{self.prefix}{attribute}"

    def _linear_hook(self, key: str) -> Callable:
        def hook(_module: nn.Module, inputs: tuple, _output: Any) -> None:
            self.stats.add(key, inputs[0], self.dtype)

        return hook

    def _attention_hook(self, name: str) -> Callable:
        in_key, out_key = self._key(name, "in_proj_weight"), self._key(f"{name}.out_proj" if name else "out_proj", "weight")

        def hook(module: nn.MultiheadAttention, args: tuple, kwargs: dict, _output: Any) -> None:
            x = _attention_input(module, args, kwargs)
            self.stats.add(in_key, x, self.dtype)
            with torch.no_grad():
                self.stats.add(out_key, attention_output(module, x), self.dtype)

        return hook

    def _proj_hook(self, vit: nn.Module, key: str) -> Callable:
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            self.stats.add(key, _pooled_before_proj(vit, output), self.dtype)

        return hook


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer's repeated blocks: the nn.ModuleList of one block class holding the most
    parameters (open_clip's transformer.resblocks, HF CLIP's encoder.layers)."""
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1:
            size = sum(p.numel() for p in module.parameters())
            if size and (best is None or size > best[0]):
                best = (size, name, module)
    if best is None:
        raise UserError(f"{type(model).__name__} has no list of repeated blocks; RegMean++ merges transformers block by block")
    return best[1], best[2]


class _Stop(Exception):
    """Raised by the block-input hook: the rest of the forward is not needed."""


@dataclass
class BlockCall:
    """How a block was called: the tokens and the remaining arguments (masks, all None in a vision tower)."""

    tokens: torch.Tensor
    args: tuple
    kwargs: dict

    def run(self, block: nn.Module) -> torch.Tensor:
        """`block` on these tokens with the same other arguments; its output tokens."""
        out = block(self.tokens, *self.args, **self.kwargs)
        return out[0] if isinstance(out, (tuple, list)) else out


def block_input(block: nn.Module, forward: Callable[[], Any]) -> BlockCall:
    """Run `forward` until `block` is called; return what it was called with."""
    captured: list[BlockCall] = []

    def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        if args:
            captured.append(BlockCall(args[0], tuple(args[1:]), dict(kwargs)))
        else:
            rest = dict(kwargs)
            captured.append(BlockCall(rest.pop("hidden_states"), (), rest))
        raise _Stop

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        forward()
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise UserError("the model's forward never reached its first block; RegMean++ needs a transformer whose blocks run in order")
    return captured[0]


def parameters_before(model: nn.Module, block: nn.Module, forward: Callable[[nn.Module], Any]) -> set[str]:
    """Names of the parameters the first block's input depends on (the embedding: patch and class
    embeddings, positions, the pre-norm), found by differentiating that input once on a copy."""
    probe = copy.deepcopy(model)
    params = dict(probe.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    block_name = next(name for name, module in model.named_modules() if module is block)
    with torch.enable_grad():
        call = block_input(dict(probe.named_modules())[block_name], lambda: forward(probe))
        grads = torch.autograd.grad(call.tokens.sum(), list(params.values()), allow_unused=True)
    return {name for name, grad in zip(params, grads) if grad is not None}
