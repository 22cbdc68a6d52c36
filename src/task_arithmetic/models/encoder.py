"""The image encoder being fine-tuned: open_clip's visual tower plus what training needs.

forward() returns the embedding BEFORE L2 normalisation: that is what the heads normalise and
what the tau-Jp penalty measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import open_clip
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from torch import nn

from ..errors import UserError
from ..io import load_weights, save_weights
from .factory import ModelSpec, OpenClipModel, check_state_matches, create_clip, quiet_random_init, register_model_config

ENCODER_FORMAT = "image_encoder"


class ImageEncoder(nn.Module):
    def __init__(self, visual: nn.Module, metadata: dict[str, Any], train_preprocess: Callable, val_preprocess: Callable):
        super().__init__()
        self.visual = visual
        self.metadata = dict(metadata)
        self.train_preprocess = train_preprocess
        self.val_preprocess = val_preprocess

    @property
    def model_name(self) -> str:
        return self.metadata["model_name"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)

    def weights(self) -> dict[str, torch.Tensor]:
        return self.visual.state_dict()

    def save(self, path: Path, extra_metadata: dict[str, Any] | None = None, companions: Mapping[Path, Path] | None = None) -> Path:
        """Weights + metadata (save_weights); companions are renamed into place with them."""
        meta = {**self.metadata, "format": ENCODER_FORMAT, **(extra_metadata or {})}
        return save_weights(path, self.weights(), meta, companions)


def encoder_from_clip(clip_model: OpenClipModel, spec: ModelSpec, train_tf: Callable, val_tf: Callable) -> ImageEncoder:
    # The preprocessing of a weight tag can differ from the architecture default (mean/std,
    # resize mode); keeping it in the metadata lets a loaded encoder rebuild the same transforms.
    meta = {**spec.metadata(), "preprocess_cfg": dict(getattr(clip_model.visual, "preprocess_cfg", {}) or {})}
    return ImageEncoder(clip_model.visual, meta, train_tf, val_tf)


def build_encoder(spec: ModelSpec, device: str | torch.device = "cpu") -> ImageEncoder:
    clip_model, train_tf, val_tf = create_clip(spec, device)
    return encoder_from_clip(clip_model, spec, train_tf, val_tf)


def empty_encoder(metadata: dict[str, Any]) -> ImageEncoder:
    """An encoder of the architecture the metadata describes, randomly initialised."""
    name = metadata.get("model_name")
    if not isinstance(name, str):
        raise UserError("weights metadata has no model_name; the file was not written by this suite's save()")
    embedded = metadata.get("model_config")
    registered = open_clip.get_model_config(name)
    if registered is None and isinstance(embedded, dict):
        # An architecture open_clip does not ship (an imported checkpoint's) travels in the metadata
        # of everything built from it, so a fresh process registers it from there.
        register_model_config(name, embedded)
        registered = open_clip.get_model_config(name)
    if registered is None:
        raise UserError(f"weights are for unknown architecture '{name}' and their metadata does not describe it; register its open_clip config first")
    # A file's metadata never redefines an architecture the process knows, so a file cannot change
    # what every later model of that name is built as.
    if embedded is not None and embedded != registered:
        raise UserError(
            f"the metadata of these weights describes architecture '{name}' differently from the registered one; "
            "the file was made with another definition of it: use weights saved with this code's definition"
        )
    with quiet_random_init():
        model, train_tf, val_tf = open_clip.create_model_and_transforms(
            name, pretrained=None, load_weights=False, force_quick_gelu=bool(metadata.get("quick_gelu", False))
        )
    if metadata.get("preprocess_cfg"):
        cfg = PreprocessCfg(**metadata["preprocess_cfg"])
        train_tf, val_tf = image_transform_v2(cfg, is_train=True), image_transform_v2(cfg, is_train=False)
    return ImageEncoder(model.visual, metadata, train_tf, val_tf)


def load_encoder(path: Path, device: str | torch.device = "cpu", expect_model: str | None = None) -> ImageEncoder:
    """Load an encoder saved by ImageEncoder.save; rebuilds the architecture from the metadata."""
    tensors, meta = load_weights(path)
    if meta.get("format") != ENCODER_FORMAT:
        raise UserError(f"{path} is not an image-encoder checkpoint (format={meta.get('format')!r}); pass a file written by this suite")
    if expect_model is not None and meta.get("model_name") != expect_model:
        raise UserError(f"{path} holds a {meta.get('model_name')} encoder, expected {expect_model}; pass the matching --model")
    encoder = empty_encoder(meta)
    check_state_matches(encoder.visual, tensors, what=f"weights file {path}", expected=meta["model_name"])
    encoder.visual.load_state_dict(tensors)
    return encoder.to(device).eval()
