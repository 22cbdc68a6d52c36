"""theta_0 and the frozen heads of a (model, weights) pair, created once and cached on disk.

Training and evaluation both call these, so they always agree on the pre-trained weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.registry import get_task
from ..io import announce_rebuild
from ..paths import Layout
from ..storage.checksums import DamagedFile
from .encoder import ImageEncoder, encoder_from_clip, load_encoder
from .factory import ModelSpec, check_cache_source, create_clip, register_source_config
from .heads import ClassificationHead, get_head


def zeroshot_encoder(spec: ModelSpec, layout: Layout, device: str | torch.device = "cpu", progress: bool = True) -> ImageEncoder:
    """The pre-trained image encoder; the first call saves it to layout.zeroshot(model_id).

    progress: whether making the weights source first (pretraining) may show a progress bar.
    """
    path = layout.zeroshot(spec.model_id)
    if path.is_file():
        # an imported architecture is declared by its weights file: known before the cache is read
        register_source_config(spec.name, spec.pretrained)
        try:
            encoder = load_encoder(path, device, expect_model=spec.name)
        except DamagedFile as err:
            announce_rebuild(err)  # theta_0 is derived from the weights source: rebuild it
        else:
            check_cache_source(encoder.metadata, spec, path)
            return encoder
    clip_model, train_tf, val_tf = create_clip(spec, device, progress)
    encoder = encoder_from_clip(clip_model, spec, train_tf, val_tf)
    encoder.save(path)
    return encoder


def task_head(spec: ModelSpec, task: str, layout: Layout, data_location: Path, device: str | torch.device = "cpu") -> ClassificationHead:
    task_spec = get_task(task)
    return get_head(spec, task_spec.name, task_spec.load_classnames(Path(data_location)), task_spec.templates, layout, device)
