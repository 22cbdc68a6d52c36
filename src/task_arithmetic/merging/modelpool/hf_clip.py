"""A pool of Hugging Face `CLIPVisionModel`s: local folders or hub ids (the format of the public
fine-tuned CLIP checkpoints, e.g. tanganke/clip-vit-base-patch32_<task>).

Nothing is downloaded unless TA_ALLOW_DOWNLOAD=1: a hub id must already be in the HF cache, or be
replaced by a local folder (`modelpool.models.<name>=/path/to/folder`). A folder of a whole
CLIPModel works too (its vision tower is used), as in FusionBench's `_pretrained_` entries.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from torch import nn

from ...errors import UserError
from ...storage.pickles import describe_unreadable, quiet_pickle_warnings
from .base import BaseModelPool

if TYPE_CHECKING:
    from transformers import PreTrainedModel

ModelT = TypeVar("ModelT", bound="PreTrainedModel")


def downloads_allowed() -> bool:
    return os.environ.get("TA_ALLOW_DOWNLOAD") == "1"


def looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or os.sep in source and Path(source).expanduser().exists()


def hf_source_available(source: str, cache_dir: str | None) -> bool:
    """A local folder with config.json, or a hub id whose config is in the HF cache (or downloads on)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return (path / "config.json").is_file()
    if looks_like_path(source):
        return False
    if downloads_allowed():
        return True
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(source, "config.json", cache_dir=cache_dir)
    except Exception:  # malformed ids raise validation errors
        return False
    return isinstance(cached, str)


def unavailable_message(what: str, items: list[tuple[str, str]]) -> str:
    listed = ", ".join(f"{name}={source}" for name, source in items)
    name, source = items[0]
    return (
        f"{what} not available offline: {listed}; on a machine with internet run "
        f"`hf download {source} --local-dir <dir>` (or any run with TA_ALLOW_DOWNLOAD=1 to fill the HF cache) "
        f"and point at the folder, e.g. {name}=<dir>"
    )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence load reports and progress bars for the call (a vision tower read from a full CLIP
    folder reports every text weight as unexpected); restore the caller's settings afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def hf_from_pretrained(model_class: type[ModelT], source: str, cache_dir: str | None, what: str) -> ModelT:
    """model_class.from_pretrained with every missing weight an error (HF would initialise it randomly)."""
    folder = Path(source).expanduser()
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise UserError(f"{what}: {source} has no config.json; pass a Hugging Face {model_class.__name__} folder (config.json and its weights)")
    if folder.is_file():
        raise UserError(f"{what}: {source} is a file; pass a Hugging Face {model_class.__name__} folder (config.json and its weights)")
    if source.startswith((".", "/", "~")) and not folder.exists():
        raise UserError(f"{what}: folder {source} does not exist; pass a Hugging Face {model_class.__name__} folder (config.json and its weights)")
    if not hf_source_available(source, cache_dir):
        raise UserError(unavailable_message(what, [(what, source)]))
    location = str(folder) if folder.is_dir() else source
    try:
        with quiet_transformers(), quiet_pickle_warnings():
            # transformers annotates from_pretrained as returning the model alone; with output_loading_info it is (model, info).
            loaded = model_class.from_pretrained(location, cache_dir=cache_dir, output_loading_info=True)
            model, info = cast(tuple[ModelT, dict[str, Any]], loaded)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load {model_class.__name__} for {what} from {source} ({str(err).splitlines()[0]})") from err
    except Exception as err:  # the weights file itself: a pickle of code (refused unread) or damaged bytes
        raise UserError(f"cannot load {model_class.__name__} for {what}: {describe_unreadable(_weights_file(location), err)}") from err
    missing = list(info.get("missing_keys") or []) + [str(k) for k in info.get("mismatched_keys") or []]
    if missing:
        raise UserError(f"{source} is not a {model_class.__name__} checkpoint ({len(missing)} weights missing or mismatched, e.g. {missing[0]}); pass a CLIP folder")
    return model.eval()


def _weights_file(location: str) -> Path | str:
    """The file from_pretrained read in a local folder (it prefers safetensors), else the source."""
    folder = Path(location)
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"):
        if (folder / name).is_file():
            return folder / name
    return location


class CLIPVisionModelPool(BaseModelPool):
    def __init__(
        self,
        models: Mapping[str, Any],
        processor: Any = None,
        platform: str = "hf",
        cache_dir: str | None = None,
        train_datasets: Mapping[str, Any] | None = None,
        test_datasets: Mapping[str, Any] | None = None,
        val_datasets: Mapping[str, Any] | None = None,
        base_model: str | None = None,
    ):
        """FusionBench's schema: models and processor as ids, folders or from_pretrained nodes; the
        datasets are kept for reference (evaluation and AdaMerging read the task pool's)."""
        from ..fusionbench_nodes import model_source

        if platform != "hf":
            raise UserError(f"platform '{platform}' is not supported; only 'hf' (local folders or the HF cache)")
        if not models:
            raise UserError("the pool has no models; give models: {_pretrained_: <folder or id>, <task>: <folder or id>, ...}")
        self.models = {str(k): model_source(v, f"modelpool.models.{k}") for k, v in models.items()}
        self.processor = model_source(processor, "modelpool.processor")  # the task pool does the preprocessing
        self.datasets = {"train": list(train_datasets or []), "test": list(test_datasets or []), "val": list(val_datasets or [])}
        self.base_model = base_model
        self.cache_dir = cache_dir

    @property
    def all_model_names(self) -> list[str]:
        return list(self.models)

    def check_available(self) -> None:
        missing = [(f"modelpool.models.{n}", s) for n, s in self.models.items() if not hf_source_available(s, self.cache_dir)]
        if missing:
            raise UserError(unavailable_message("CLIP checkpoints", missing))

    def load_model(self, name: str) -> nn.Module:
        from transformers import CLIPVisionModel

        self.check_name(name)
        return hf_from_pretrained(CLIPVisionModel, self.models[name], self.cache_dir, f"modelpool.models.{name}")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sources": dict(self.models)}
