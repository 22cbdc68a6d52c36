"""The self-pretrained TinyCLIP as a weight source: `ModelSpec("TinyCLIP", pretrained="embedded")`.

The resolver returns the cached full-CLIP weights file, pretraining it first when it is missing.
Default location: checkpoints/pretrained/TinyCLIP-<tag>.safetensors (or <cache_dir>/ when the
spec has a cache_dir). A file pretrained with another recipe or architecture is never reused
silently: everything under checkpoints/TinyCLIP-<tag>/ was derived from it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import open_clip

from ..errors import UserError
from ..io import read_json, save_weights
from ..models.factory import register_weight_source
from ..paths import DEFAULT_CHECKPOINT_ROOT
from ..runtime import pick_device
from .presets import PRESETS, Preset, preset_for_tag

MODEL_NAME = "TinyCLIP"
CLIP_FORMAT = "clip"


def weights_path(tag: str, cache_dir: str | Path | None = None) -> Path:
    folder = Path(cache_dir) if cache_dir else DEFAULT_CHECKPOINT_ROOT / "pretrained"
    return folder / f"{MODEL_NAME}-{tag}.safetensors"


def recipe_fingerprint(preset: Preset) -> dict[str, str]:
    """What the cached weights must have been made with: the pretraining recipe and the architecture."""
    config = open_clip.get_model_config(MODEL_NAME)
    arch = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    from .corpus import CORPUS_VERSION, MIXTURE
    from .datasets import GENERATOR_VERSION

    return {
        "pretrain_digest": preset.pretrain.digest(),
        "architecture_digest": arch,
        "generator_version": GENERATOR_VERSION,
        "corpus_version": CORPUS_VERSION,
        "mixture": repr(MIXTURE),
    }


def resolve_weights(tag: str, cache_dir: str | None = None, progress: bool = True) -> Path:
    """Path of the pretrained weights for `tag`; pretrains and saves them (atomically) if missing."""
    preset = preset_for_tag(tag)
    path = weights_path(tag, cache_dir)
    expected = recipe_fingerprint(preset)
    meta_file = path.with_suffix(".json")
    if path.is_file() and meta_file.is_file():
        meta = read_json(meta_file)
        stale = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
        if stale:
            key = next(iter(stale))
            raise UserError(
                f"{path} was pretrained with a different {key.replace('_', ' ')} than the code now uses; delete it "
                f"and everything derived from it (the folder {MODEL_NAME}-{tag}/ under your checkpoint root) to pretrain again"
            )
        return path
    from .pretrain import notice, pretrain_clip

    print(notice(f"{MODEL_NAME} weights '{tag}' are not cached at {path}", preset.pretrain), flush=True)
    model, summary = pretrain_clip(preset.pretrain, pick_device("auto"), progress=progress)
    metadata = {
        "format": CLIP_FORMAT,
        "model_name": MODEL_NAME,
        "weight_tag": tag,
        "preset": preset.name,
        "model_config": open_clip.get_model_config(MODEL_NAME),
        "pretrain_config": {**preset.pretrain.__dict__},
        **expected,
        **summary,
    }
    return save_weights(path, model.state_dict(), metadata)


def register_weight_sources() -> None:
    for preset in PRESETS.values():
        register_weight_tag(preset.weight_tag)


def register_weight_tag(tag: str) -> None:
    """Make `--pretrained <tag>` resolve; a preset's own tag, or one with a pretraining seed (`embedded-p1`)."""
    preset_for_tag(tag)  # fails early with the valid tags
    register_weight_source(MODEL_NAME, tag, functools.partial(resolve_weights, tag))


def ensure_weight_tag(tag: str | None) -> None:
    """Register `tag` when it is one of the embedded presets' (a pretraining seed's tag included),
    so a study rebuilt in a fresh process (a worker, a Slurm job) resolves it; other sources
    (files, open_clip tags) need nothing."""
    if tag is None:
        return
    try:
        preset_for_tag(tag)
    except UserError:
        return
    register_weight_tag(tag)
