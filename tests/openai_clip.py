"""HF CLIP folders of the real OpenAI geometries, built with transformers' own classes (random
weights: nothing is downloaded), and fine-tuned models of them in the formats found in public
checkpoints. The configuration values are those of the public configs of openai/clip-vit-base-patch32,
openai/clip-vit-base-patch16 and openai/clip-vit-large-patch14 (config.json on the hub).
"""

from __future__ import annotations

from pathlib import Path

import torch

# Shared by the three public configs (both towers): QuickGELU, LayerNorm eps 1e-5, the 49408-token
# BPE vocabulary and 77-token context; the text config declares bos 0 / eos 2, as theirs does.
_TEXT = dict(vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2)
_VISION = dict(image_size=224, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5)

OPENAI_CONFIGS: dict[str, dict] = {
    "ViT-B-32": dict(
        projection_dim=512,
        text_config=dict(_TEXT, hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12),
        vision_config=dict(_VISION, hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, patch_size=32),
    ),
    "ViT-B-16": dict(
        projection_dim=512,
        text_config=dict(_TEXT, hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12),
        vision_config=dict(_VISION, hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, patch_size=16),
    ),
    "ViT-L-14": dict(
        projection_dim=768,
        text_config=dict(_TEXT, hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12),
        vision_config=dict(_VISION, hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, patch_size=14),
    ),
}


def openai_config(name: str, depth: int | None = None, **vision):
    """The HF CLIPConfig of an OpenAI CLIP; `depth` shrinks both towers' layer count (nothing else)."""
    from transformers import CLIPConfig

    values = OPENAI_CONFIGS[name]
    text, vision_config = dict(values["text_config"]), {**values["vision_config"], **vision}
    if depth is not None:
        text["num_hidden_layers"] = vision_config["num_hidden_layers"] = depth
    return CLIPConfig(projection_dim=values["projection_dim"], text_config=text, vision_config=vision_config, logit_scale_init_value=2.6592)


def openai_clip(name: str, depth: int | None = None, seed: int = 0, **vision):
    """A randomly initialised transformers CLIPModel of that geometry (transformers' own init)."""
    from transformers import CLIPModel

    torch.manual_seed(seed)
    return CLIPModel(openai_config(name, depth, **vision)).eval()


def finetuned_vision(clip, seed: int, scale: float = 0.01):
    """A CLIPVisionModel: clip's vision tower with every weight moved a little, as fine-tuning does."""
    from transformers import CLIPVisionModel

    from task_arithmetic.checkpoints.hf_convert import vision_tower

    model = CLIPVisionModel(clip.config.vision_config).eval()
    generator = torch.Generator().manual_seed(seed)
    state = {k: v + scale * v.std().nan_to_num(1.0) * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
             for k, v in vision_tower(clip).state_dict().items()}
    vision_tower(model).load_state_dict(state)
    return model


def save_hf(model, folder: Path, form: str) -> Path:
    """Save a CLIPVisionModel as public fine-tunes come: 'safetensors' (one file), 'sharded'
    (safetensors shards + index) or 'bin' (pytorch_model.bin with transformers 4's key names, as
    the older public checkpoints have it; transformers 5 no longer writes that format)."""
    from task_arithmetic.checkpoints.hf_convert import HF_VISION_PREFIX, vision_tower

    folder = Path(folder)
    if form == "safetensors":
        model.save_pretrained(folder)
    elif form == "sharded":
        model.save_pretrained(folder, max_shard_size="20MB")
        assert (folder / "model.safetensors.index.json").is_file()
    elif form == "bin":
        folder.mkdir(parents=True, exist_ok=True)
        model.config.to_json_file(folder / "config.json")
        torch.save({HF_VISION_PREFIX + k: v for k, v in vision_tower(model).state_dict().items()}, folder / "pytorch_model.bin")
    else:
        raise ValueError(form)
    return folder


def save_open_clip(clip, vision_model, path: Path) -> Path:
    """An open_clip state-dict file (torch.save of a whole CLIP) holding `vision_model` as its image tower."""
    from task_arithmetic.checkpoints.hf_convert import clip_to_open_clip, open_clip_config, vision_to_open_clip, vision_tower

    config, _ = open_clip_config(clip.config)
    state = clip_to_open_clip(clip, config)
    visual = vision_to_open_clip(vision_tower(vision_model).state_dict(), clip.visual_projection.weight.detach(), config["vision_cfg"]["layers"])
    state.update({f"visual.{k}": v for k, v in visual.items()})
    torch.save(state, path)
    return path


def hf_image_embedding(vision_model, projection: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """What transformers computes for a CLIPVisionModel + projection: the suite's encoder output."""
    with torch.no_grad():
        return vision_model(pixel_values=images).pooler_output @ projection.t()


# The exported geometries whose transformers 4 key layout tests/transformers4_layout.json records:
# (name, depth) with depth None for the full model.
EXPORTED_GEOMETRIES: tuple[tuple[str, int | None], ...] = (("ViT-B-32", None), ("ViT-B-16", 1), ("ViT-L-14", 1), ("ViT-B-32", 1))


def geometry_key(name: str, depth: int | None) -> str:
    return name if depth is None else f"{name}@depth{depth}"
