"""FusionBench's `_target_` nodes inside pool configs, read as data, never imported.

FusionBench writes models, processors and datasets as Hydra nodes, e.g.
    {_target_: transformers.CLIPVisionModel.from_pretrained, pretrained_model_name_or_path: X}
    {_target_: datasets.load_dataset, path: tanganke/svhn, split: test}
Only the loaders listed here are understood; each node becomes the source it names (a hub id or a
local folder for the suite's own loaders) or a (dataset name, split). Any other target is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UserError

MODEL_LOADERS = (
    "transformers.CLIPVisionModel.from_pretrained",
    "transformers.CLIPModel.from_pretrained",
    "transformers.CLIPProcessor.from_pretrained",
    "transformers.AutoProcessor.from_pretrained",
)
DATASET_LOADERS = ("datasets.load_dataset", "fusion_bench.utils.data.train_validation_split")
# FusionBench's split names -> the suite's.
SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "validation": "val"}


def _target(node: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> str:
    target = node.get("_target_")
    if target not in allowed:
        raise UserError(f"{what}: _target_ '{target}' is not a loader this suite reads; use one of {', '.join(allowed)} or a plain name/folder")
    return str(target)


def model_source(node: Any, what: str) -> str | None:
    """A hub id or folder from a plain string or a from_pretrained node (None stays None)."""
    if node is None or isinstance(node, str):
        return node
    if isinstance(node, Mapping):
        _target(node, MODEL_LOADERS, what)
        args = list(node.get("_args_") or [])
        source = node.get("pretrained_model_name_or_path", args[0] if args else None)
        if not isinstance(source, str) or not source:
            raise UserError(f"{what}: the from_pretrained node names no pretrained_model_name_or_path")
        return source
    raise UserError(f"{what} must be a hub id, a folder or a from_pretrained node, got {node!r}")


def dataset_split(name: str, node: Any, default: str, what: str) -> str:
    """The suite's split for one dataset entry (a bare name, or a load_dataset node with `split`)."""
    if not isinstance(node, Mapping):
        return default
    if _target(node, DATASET_LOADERS, what).endswith("train_validation_split"):
        # FusionBench's Val part of the train split; the suite's own Val part stands in for it
        # (10 % of train, seed 0 too, but not necessarily the same examples).
        split = node.get("return_split", "val")
    else:
        split = node.get("split", default)
    if split not in SPLIT_NAMES:
        raise UserError(f"{what}: split '{split}' of dataset '{name}' is unknown; valid: {', '.join(SPLIT_NAMES)}")
    return SPLIT_NAMES[split]
