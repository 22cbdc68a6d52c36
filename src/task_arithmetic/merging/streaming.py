"""Load encoders one tensor at a time, so merging N checkpoints never holds N of them.

The reader itself is the suite's one safetensors reader (task_arithmetic/weights_reader.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..io import metadata_path, read_json
from ..models.encoder import ENCODER_FORMAT, ImageEncoder, empty_encoder
from ..state_dicts import state_mismatch
from ..weights_reader import KeyView, SafetensorsReader

__all__ = ["KeyView", "SafetensorsReader", "copy_state_into", "encoder_metadata", "load_encoder_streaming"]

@torch.no_grad()
def copy_state_into(module: nn.Module, state: Mapping, what: str) -> None:
    """Load `state` into `module` tensor by tensor (strict), never materialising a second full copy."""
    own = module.state_dict()
    problem = state_mismatch(own, state)
    if problem:
        raise UserError(f"{what} does not fit the model: {problem}; pass weights of the same architecture")
    for key, target in own.items():
        target.copy_(state[key])


def encoder_metadata(path: Path) -> dict[str, Any]:
    meta_file = metadata_path(path)
    return read_json(meta_file) if meta_file.is_file() else {}


def load_encoder_streaming(path: Path, expect_model: str | None = None) -> ImageEncoder:
    """Like models.encoder.load_encoder, but copies the weights in one tensor at a time."""
    path = Path(path)
    meta = encoder_metadata(path)
    if meta.get("format") != ENCODER_FORMAT:
        raise UserError(f"{path} is not an image-encoder checkpoint (format={meta.get('format')!r}); pass a file written by this suite")
    if expect_model is not None and meta.get("model_name") != expect_model:
        raise UserError(f"{path} holds a {meta.get('model_name')} encoder, expected {expect_model}; pass weights of the matching model")
    reader = SafetensorsReader(path)
    encoder = empty_encoder(meta)
    copy_state_into(encoder.visual, reader, what=f"weights file {path}")
    return encoder.eval()
