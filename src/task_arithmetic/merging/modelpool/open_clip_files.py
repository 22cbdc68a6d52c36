"""A pool of open_clip image encoders from weight files or pretrained tags.

Each source is one of:
- an open_clip pretrained tag of `model` (e.g. `openai`; needs the weights in the cache);
- an image-encoder .safetensors written by this suite (ImageEncoder.save);
- a state_dict file (.pt/.pth/.bin/.safetensors) of a whole open_clip CLIP model (its `visual.`
  entries are used) or of the visual tower alone.
Files holding pickled modules (the original task-vectors checkpoints) cannot be read safely;
re-save their state_dict once where the code that pickled them is available.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from ...errors import UserError
from ...models.encoder import ENCODER_FORMAT, build_encoder, empty_encoder
from ...models.factory import ModelSpec, check_model_name
from ...storage.pickles import RESAVE, load_tensor_pickle
from ..streaming import KeyView, SafetensorsReader, copy_state_into, encoder_metadata, load_encoder_streaming
from .base import BaseModelPool

FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


class OpenCLIPVisionModelPool(BaseModelPool):
    def __init__(
        self,
        model: str,
        models: Mapping[str, str],
        quick_gelu: bool = False,
        cache_dir: str | None = None,
        model_dir: str | Path | None = None,
    ):
        check_model_name(model)
        if not models:
            raise UserError("the open_clip pool has no models; give models: {_pretrained_: <tag or file>, <task>: <file>, ...}")
        self.model_name = model
        # Relative file names are taken relative to model_dir (when given).
        self.models = {str(k): self._locate(str(v), model_dir) for k, v in models.items()}
        # Files carry no activation choice: OpenAI-derived weights need QuickGELU (set it to true).
        self.quick_gelu = bool(quick_gelu)
        self.cache_dir = cache_dir

    @property
    def all_model_names(self) -> list[str]:
        return list(self.models)

    @staticmethod
    def _is_file(source: str) -> bool:
        return os.sep in source or source.endswith(FILE_SUFFIXES)

    @classmethod
    def _locate(cls, source: str, model_dir: str | Path | None) -> str:
        if model_dir and cls._is_file(source) and not Path(source).expanduser().is_absolute():
            return str(Path(model_dir).expanduser() / source)
        return str(Path(source).expanduser()) if cls._is_file(source) else source

    def check_available(self) -> None:
        tags = open_clip.list_pretrained_tags_by_model(self.model_name)
        for name, source in self.models.items():
            if self._is_file(source):
                if not Path(source).is_file():
                    raise UserError(f"model '{name}': weights file {source} does not exist; fix modelpool.models.{name}")
            elif source not in tags:
                raise UserError(
                    f"model '{name}': '{source}' is neither an existing weights file nor an open_clip tag of {self.model_name} "
                    f"(tags: {', '.join(tags) or 'none'}); fix modelpool.models.{name}"
                )

    def load_model(self, name: str) -> nn.Module:
        self.check_name(name)
        source = self.models[name]
        if not self._is_file(source):
            self.check_available()
            return build_encoder(ModelSpec(self.model_name, source, self.cache_dir))
        path = Path(source)
        if path.suffix == ".safetensors" and encoder_metadata(path).get("format") == ENCODER_FORMAT:
            return load_encoder_streaming(path, expect_model=self.model_name)
        spec = ModelSpec(self.model_name, source, self.cache_dir)
        encoder = empty_encoder({**spec.metadata(), "quick_gelu": self.quick_gelu})
        copy_state_into(encoder.visual, self._visual_state(Path(source)), what=f"weights file {source}")
        return encoder.eval()

    def load_state(self, name: str) -> Mapping[str, torch.Tensor]:
        self.check_name(name)
        source = self.models[name]
        if not self._is_file(source):
            return self.load_model(name).state_dict()
        self.check_available()
        # The keys of the module load_model returns: ImageEncoder holds the tower as `visual`.
        return KeyView(self._visual_state(Path(source)), add="visual.")

    @staticmethod
    def _visual_state(path: Path) -> Mapping[str, torch.Tensor]:
        """The visual tower's entries of a whole-CLIP or tower-only file, under the tower's own names."""
        state = SafetensorsReader(path) if path.suffix == ".safetensors" else _read_torch_state(path)
        if len(state) and all(k.startswith("module.") for k in state):
            state = KeyView(state, strip="module.")
        if any(k.startswith("visual.") for k in state):
            state = KeyView(state, strip="visual.")
        return state

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model_name": self.model_name, "sources": dict(self.models)}


def _read_torch_state(path: Path) -> Mapping[str, torch.Tensor]:
    # mmap: tensors are paged in as the merge reads them instead of all at once.
    state = load_tensor_pickle(path, mmap=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a state_dict of tensors; {RESAVE}")
    return state
