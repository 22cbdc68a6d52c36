"""Exact conversion between Hugging Face CLIP weights and open_clip's, both directions.

Only reshaping: HF keeps q, k and v as three Linear layers where open_clip's attention holds one
stacked in_proj, and HF's projections are Linear weights (out x in) where open_clip multiplies by
the transposed matrix. No arithmetic touches a value, so a round trip is bit-exact.

The architecture is derived from the HF config as an open_clip config dict; `named_config` finds
the built-in open_clip name with the same architecture, if any.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import open_clip
import torch

from ..errors import UserError
from ..state_dicts import shape_of

HF_ACTIVATIONS = {"quick_gelu": True, "gelu": False}  # HF hidden_act -> open_clip quick_gelu
OPEN_CLIP_EPS = 1e-5  # open_clip's LayerNorm eps; HF configs carry their own
# Fields of an open_clip config a plain CLIP ViT + text transformer may have; anything else
# (timm towers, attentional pooling, SigLIP biases, ...) is an architecture HF's CLIP cannot hold.
VISION_FIELDS = {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16, "head_width": 64, "mlp_ratio": 4.0}
TEXT_FIELDS = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12, "mlp_ratio": 4.0}
TOP_FIELDS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"}


def _check_tower(config: Any, what: str) -> None:
    if config.hidden_act not in HF_ACTIVATIONS:
        raise UserError(f"{what} uses activation '{config.hidden_act}'; only quick_gelu and gelu CLIP models convert to open_clip")
    if abs(float(config.layer_norm_eps) - OPEN_CLIP_EPS) > 1e-12:
        raise UserError(f"{what} has layer_norm_eps {config.layer_norm_eps}; open_clip's CLIP uses {OPEN_CLIP_EPS}, so it cannot be converted exactly")
    if config.hidden_size % config.num_attention_heads:
        raise UserError(f"{what}: hidden_size {config.hidden_size} is not a multiple of num_attention_heads {config.num_attention_heads}")


def vision_cfg(vision: Any) -> dict[str, Any]:
    _check_tower(vision, "the vision config")
    return {
        "image_size": int(vision.image_size),
        "layers": int(vision.num_hidden_layers),
        "width": int(vision.hidden_size),
        "patch_size": int(vision.patch_size),
        "head_width": int(vision.hidden_size // vision.num_attention_heads),
        "mlp_ratio": vision.intermediate_size / vision.hidden_size,
    }


def open_clip_config(hf_config: Any) -> tuple[dict[str, Any], bool]:
    """(open_clip config dict, quick_gelu) of an HF CLIPConfig."""
    text = hf_config.text_config
    _check_tower(text, "the text config")
    if text.hidden_act != hf_config.vision_config.hidden_act:
        raise UserError(f"the text tower uses {text.hidden_act} and the vision tower {hf_config.vision_config.hidden_act}; open_clip has one activation per model")
    config = {
        "embed_dim": int(hf_config.projection_dim),
        "vision_cfg": vision_cfg(hf_config.vision_config),
        "text_cfg": {
            "context_length": int(text.max_position_embeddings),
            "vocab_size": int(text.vocab_size),
            "width": int(text.hidden_size),
            "heads": int(text.num_attention_heads),
            "layers": int(text.num_hidden_layers),
            "mlp_ratio": text.intermediate_size / text.hidden_size,
        },
    }
    return config, HF_ACTIVATIONS[hf_config.vision_config.hidden_act]


def canonical(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config with defaults filled in, or None when it is not a plain CLIP ViT (not convertible)."""
    if set(config) - TOP_FIELDS or set(config.get("vision_cfg", {})) - set(VISION_FIELDS) or set(config.get("text_cfg", {})) - set(TEXT_FIELDS):
        return None
    if not isinstance(config.get("vision_cfg", {}).get("layers", 0), int):
        return None  # a ResNet tower gives its layers as a tuple
    return {
        "embed_dim": config["embed_dim"],
        "vision_cfg": {**VISION_FIELDS, **config["vision_cfg"]},
        "text_cfg": {**TEXT_FIELDS, **config["text_cfg"]},
    }


def named_config(config: Mapping[str, Any]) -> str | None:
    """The built-in open_clip architecture equal to `config` (activation aside), shortest name first."""
    target = canonical(config)
    for name in sorted(open_clip.list_models(), key=lambda n: (len(n), n)):
        if name.endswith("-quickgelu"):
            continue  # the activation travels as a flag, not as a name
        other = open_clip.get_model_config(name)
        if other is not None and canonical(other) == target:
            return name
    return None


def custom_name(config: Mapping[str, Any]) -> str:
    """A stable name for an architecture open_clip does not ship."""
    digest = hashlib.sha256(json.dumps(canonical(config), sort_keys=True).encode()).hexdigest()[:8]
    return f"HF-CLIP-{digest}"


def hf_vision_config(config: Mapping[str, Any], quick_gelu: bool) -> dict[str, Any]:
    """CLIPVisionConfig keyword arguments for an open_clip architecture (the export direction)."""
    plain = canonical(config)
    if plain is None:
        raise UserError(f"architecture {sorted(config)} is not a plain CLIP ViT; only those export to an HF CLIPVisionModel")
    v = plain["vision_cfg"]
    intermediate = int(v["width"] * v["mlp_ratio"])
    return {
        "hidden_size": v["width"],
        "intermediate_size": intermediate,
        "num_hidden_layers": v["layers"],
        "num_attention_heads": v["width"] // v["head_width"],
        "image_size": v["image_size"],
        "patch_size": v["patch_size"],
        "projection_dim": plain["embed_dim"],
        "hidden_act": "quick_gelu" if quick_gelu else "gelu",
        "layer_norm_eps": OPEN_CLIP_EPS,
    }


# ---- weights -------------------------------------------------------------------------------

_LAYER_NAMES = {  # open_clip resblock -> HF encoder layer, for the parameters mapped one to one
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def _blocks_to_open_clip(hf: Mapping[str, torch.Tensor], prefix: str, layers: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for i in range(layers):
        src, dst = f"{prefix}encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for ours, theirs in _LAYER_NAMES.items():
            for kind in ("weight", "bias"):
                out[f"{dst}{ours}.{kind}"] = hf[f"{src}{theirs}.{kind}"]
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat([hf[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv"])
    return out


def _blocks_to_hf(oc: Mapping[str, torch.Tensor], prefix: str, layers: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"{prefix}encoder.layers.{i}."
        for ours, theirs in _LAYER_NAMES.items():
            for kind in ("weight", "bias"):
                out[f"{dst}{theirs}.{kind}"] = oc[f"{src}{ours}.{kind}"]
        for kind in ("weight", "bias"):
            for name, part in zip("qkv", oc[f"{src}attn.in_proj_{kind}"].chunk(3)):
                out[f"{dst}self_attn.{name}_proj.{kind}"] = part.clone()
    return out


# The key prefix of a CLIPVisionModel's weights as transformers 4 names them (its CLIPVisionModel
# nests the tower as `vision_model`). transformers 5 saves the tower's keys bare but reads these too,
# so an export written with it loads in both.
HF_VISION_PREFIX = "vision_model."


def visual_geometry(state: Mapping[str, Any]) -> dict[str, int]:
    """Width, depth, patch size, image size and MLP width of an open_clip visual state, read from
    the tensor shapes alone (so it works for a bare state-dict file, which carries no config)."""
    width, _, patch, _ = shape_of(state, "conv1.weight")
    tokens = shape_of(state, "positional_embedding")[0] - 1
    side = round(tokens**0.5)
    layers = {k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")}
    return {
        "width": int(width),
        "layers": len(layers),
        "patch_size": int(patch),
        "image_size": int(side * patch) if side * side == tokens else -1,
        "mlp_width": int(shape_of(state, "transformer.resblocks.0.mlp.c_fc.weight")[0]) if layers else 0,
    }


def vision_tower(model: Any) -> torch.nn.Module:
    """The vision transformer inside an HF CLIPVisionModel or CLIPModel. transformers 4 nests it as
    `vision_model`; 5 does so for CLIPModel but makes CLIPVisionModel the tower itself."""
    return getattr(model, "vision_model", model)


def vision_to_open_clip(hf: Mapping[str, torch.Tensor], projection: torch.Tensor, layers: int) -> dict[str, torch.Tensor]:
    """open_clip visual-tower state from an HF vision tower's state (`vision_tower(m).state_dict()`)
    and the HF visual_projection weight (embed x width)."""
    return {
        "class_embedding": hf["embeddings.class_embedding"],
        "positional_embedding": hf["embeddings.position_embedding.weight"],
        "conv1.weight": hf["embeddings.patch_embedding.weight"],
        "ln_pre.weight": hf["pre_layrnorm.weight"],
        "ln_pre.bias": hf["pre_layrnorm.bias"],
        **_blocks_to_open_clip(hf, "", layers),
        "ln_post.weight": hf["post_layernorm.weight"],
        "ln_post.bias": hf["post_layernorm.bias"],
        "proj": projection.t().contiguous(),
    }


def vision_to_hf(oc: Mapping[str, torch.Tensor], layers: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(HF vision tower state, visual_projection weight) from an open_clip visual state."""
    state = {
        "embeddings.class_embedding": oc["class_embedding"],
        "embeddings.position_embedding.weight": oc["positional_embedding"],
        "embeddings.patch_embedding.weight": oc["conv1.weight"],
        "pre_layrnorm.weight": oc["ln_pre.weight"],
        "pre_layrnorm.bias": oc["ln_pre.bias"],
        **_blocks_to_hf(oc, "", layers),
        "post_layernorm.weight": oc["ln_post.weight"],
        "post_layernorm.bias": oc["ln_post.bias"],
    }
    return state, oc["proj"].t().contiguous()


def clip_to_open_clip(clip: Any, config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A whole open_clip CLIP state dict from an HF CLIPModel (vision and text towers, logit scale)."""
    visual = vision_to_open_clip(vision_tower(clip).state_dict(), clip.visual_projection.weight.detach(), config["vision_cfg"]["layers"])
    text = clip.text_model.state_dict()
    return {
        **{f"visual.{k}": v for k, v in visual.items()},
        "token_embedding.weight": text["embeddings.token_embedding.weight"],
        "positional_embedding": text["embeddings.position_embedding.weight"],
        **_blocks_to_open_clip(text, "", config["text_cfg"]["layers"]),
        "ln_final.weight": text["final_layer_norm.weight"],
        "ln_final.bias": text["final_layer_norm.bias"],
        "text_projection": clip.text_projection.weight.detach().t().contiguous(),
        "logit_scale": clip.logit_scale.detach().reshape(()),
    }
