"""Any image encoder of this suite (a run, a merged model, theta_0) out as an HF CLIPVisionModel.

The folder is what `CLIPVisionModel.from_pretrained` loads (config.json + model.safetensors), in
transformers 4 and 5 alike: the weights carry transformers 4's key names (`vision_model.` ...),
which transformers 5 also reads, and the file declares the format transformers 4 requires.
CLIPVisionModel has no projection; the encoder's own projection is written beside it as
visual_projection.safetensors, which import reads back, so a round trip keeps it. HF-only users
(FusionBench's task pool) take the projection of the CLIPModel they pair it with instead.
The folder appears whole or not at all (io.atomic_folder); --force replaces only a previous export.
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from ..errors import UserError
from ..io import atomic_folder, atomic_write_text, save_plain_safetensors, save_weights
from ..models.encoder import load_encoder
from ..state_dicts import state_mismatch
from ..storage.write_errors import check_output_path
from .hf_convert import HF_VISION_PREFIX, hf_vision_config, vision_to_hf, vision_tower
from .importing import PROJECTION_FILE

HF_WEIGHTS_FILE = "model.safetensors"
SAFETENSORS_HEADER = {"format": "pt"}  # transformers 4 refuses a safetensors file without it


def hf_expected_state(hf_config) -> dict[str, torch.Tensor]:
    """The keys and shapes a CLIPVisionModel of this config holds (built on the meta device: no memory, no init)."""
    from transformers import CLIPVisionModel

    with torch.device("meta"):
        return vision_tower(CLIPVisionModel(hf_config)).state_dict()


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
    """Write the HF folder (the key names transformers 4 and 5 both read) beside its place and
    rename it in whole: a failure (a full disk, a read-only folder) leaves one line and the
    previous export, never half of each."""
    from transformers import CLIPVisionConfig

    folder = Path(folder)
    check_export_folder(folder, force)
    encoder = load_encoder(Path(encoder_file))
    if encoder.metadata.get("linearized"):
        raise UserError(f"{encoder_file} is a linearised model; export the encoder weights it was built from")
    config = encoder.metadata.get("model_config") or open_clip.get_model_config(encoder.model_name)
    if config is None:
        raise UserError(f"{encoder_file}: unknown architecture {encoder.model_name}; it cannot be exported")
    hf_config = CLIPVisionConfig(**hf_vision_config(config, bool(encoder.metadata.get("quick_gelu", False))))
    hf_config.architectures = ["CLIPVisionModel"]
    hf_config.dtype = torch.float32  # what save_pretrained records for float32 weights
    state, projection = vision_to_hf(encoder.weights(), hf_config.num_hidden_layers)
    problem = state_mismatch(hf_expected_state(hf_config), state)
    if problem:
        raise UserError(f"{encoder_file} does not map onto a CLIPVisionModel ({problem}); export an image encoder of a plain CLIP ViT")
    needed = sum(t.numel() * t.element_size() for t in state.values()) + projection.numel() * projection.element_size()
    with atomic_folder(folder, needed) as partial:
        save_plain_safetensors(partial / HF_WEIGHTS_FILE, {HF_VISION_PREFIX + k: v for k, v in state.items()}, SAFETENSORS_HEADER)
        save_weights(partial / PROJECTION_FILE, {"weight": projection}, {"format": "visual_projection", "source": str(encoder_file)})
        atomic_write_text(partial / "config.json", hf_config.to_json_string())  # last: what marks a folder as holding a model
    return folder
