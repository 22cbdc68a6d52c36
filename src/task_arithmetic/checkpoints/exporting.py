"""Any image encoder of this suite (a run, a merged model, theta_0) out as an HF CLIPVisionModel.

The folder is what `CLIPVisionModel.from_pretrained` loads (config.json + model.safetensors).
CLIPVisionModel has no projection; the encoder's own projection is written beside it as
visual_projection.safetensors, which import reads back, so a round trip keeps it. HF-only users
(FusionBench's task pool) take the projection of the CLIPModel they pair it with instead.
The folder appears whole or not at all (io.atomic_folder); --force replaces only a previous export.
"""

from __future__ import annotations

from pathlib import Path

import open_clip

from ..errors import UserError
from ..io import atomic_folder, save_weights
from ..merging.modelpool.hf_clip import quiet_transformers
from ..models.encoder import load_encoder
from .hf_convert import hf_vision_config, vision_to_hf, vision_tower
from ..storage.write_errors import check_output_path
from .importing import PROJECTION_FILE


# What an export folder holds: an existing folder with anything else in it is not an export.
EXPORT_FILES = ("config.json", "model.safetensors", PROJECTION_FILE, PROJECTION_FILE.replace(".safetensors", ".json"))


def check_export_folder(folder: Path, force: bool) -> None:
    """Refuse, before any work, a folder the export cannot (or must not) become."""
    check_output_path(folder, "folder", what="export folder")
    if not folder.is_dir():
        return
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in EXPORT_FILES)
    if foreign:
        raise UserError(f"{folder} holds other files ({', '.join(foreign[:3])}); export into a new or empty folder, nothing there is replaced")
    if (folder / "config.json").exists() and not force:
        raise UserError(f"{folder} already holds a model; pass another folder or --force to replace it")


def export_hf(encoder_file: Path, folder: Path, force: bool = False) -> Path:
    """Write the HF folder beside its place and rename it in whole: a failure (a full disk, a
    read-only folder) leaves one line and the previous export, never half of each."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = Path(folder)
    check_export_folder(folder, force)
    encoder = load_encoder(Path(encoder_file))
    if encoder.metadata.get("linearized"):
        raise UserError(f"{encoder_file} is a linearised model; export the encoder weights it was built from")
    config = encoder.metadata.get("model_config") or open_clip.get_model_config(encoder.model_name)
    if config is None:
        raise UserError(f"{encoder_file}: unknown architecture {encoder.model_name}; it cannot be exported")
    hf_config = CLIPVisionConfig(**hf_vision_config(config, bool(encoder.metadata.get("quick_gelu", False))))
    state, projection = vision_to_hf(encoder.weights(), hf_config.num_hidden_layers)
    model = CLIPVisionModel(hf_config)
    missing, unexpected = vision_tower(model).load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise UserError(f"{encoder_file} does not map onto a CLIPVisionModel (missing {missing[:1]}, unexpected {unexpected[:1]})")
    needed = sum(t.numel() * t.element_size() for t in model.state_dict().values()) + projection.numel() * projection.element_size()
    with atomic_folder(folder, needed) as partial:
        with quiet_transformers():
            model.save_pretrained(partial, safe_serialization=True)
        save_weights(partial / PROJECTION_FILE, {"weight": projection}, {"format": "visual_projection", "source": str(encoder_file)})
    return folder
