"""Any image encoder of this suite (a run, a merged model, theta_0) out as an HF CLIPVisionModel.

The folder is what `CLIPVisionModel.from_pretrained` loads (config.json + model.safetensors), in
transformers 4 and 5 alike: the weights carry transformers 4's key names (`vision_model.` ...),
which transformers 5 also reads, and the file declares the format transformers 4 requires.
CLIPVisionModel has no projection; the encoder's own projection is written beside it as
visual_projection.safetensors, which import reads back, so a round trip keeps it. HF-only users
(FusionBench's task pool) take the projection of the CLIPModel they pair it with instead.
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from ..errors import UserError
from ..io import atomic_write_text, save_plain_safetensors, save_weights
from ..models.encoder import load_encoder
from ..state_dicts import state_mismatch
from .hf_convert import HF_VISION_PREFIX, hf_vision_config, vision_to_hf, vision_tower
from .importing import PROJECTION_FILE

HF_WEIGHTS_FILE = "model.safetensors"
SAFETENSORS_HEADER = {"format": "pt"}  # transformers 4 refuses a safetensors file without it


def hf_expected_state(hf_config) -> dict[str, torch.Tensor]:
    """The keys and shapes a CLIPVisionModel of this config holds (built on the meta device: no memory, no init)."""
    from transformers import CLIPVisionModel

    with torch.device("meta"):
        return vision_tower(CLIPVisionModel(hf_config)).state_dict()


def export_hf(encoder_file: Path, folder: Path, force: bool = False) -> Path:
    from transformers import CLIPVisionConfig

    encoder = load_encoder(Path(encoder_file))
    if encoder.metadata.get("linearized"):
        raise UserError(f"{encoder_file} is a linearised model; export the encoder weights it was built from")
    folder = Path(folder)
    if (folder / "config.json").exists() and not force:
        raise UserError(f"{folder} already holds a model; pass another folder or --force to replace it")
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
    # A replaced model loses its config.json first, so a write cut short never leaves new weights
    # described as the old model.
    (folder / "config.json").unlink(missing_ok=True)
    save_plain_safetensors(folder / HF_WEIGHTS_FILE, {HF_VISION_PREFIX + k: v for k, v in state.items()}, SAFETENSORS_HEADER)
    save_weights(folder / PROJECTION_FILE, {"weight": projection}, {"format": "visual_projection", "source": str(encoder_file)})
    # config.json last: it is what marks the folder as holding a model.
    atomic_write_text(folder / "config.json", hf_config.to_json_string())
    return folder
