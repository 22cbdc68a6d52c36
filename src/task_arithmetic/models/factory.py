"""Build open_clip CLIP models by name, with weights from a tag, a local file, or none.

Custom architectures (the embedded benchmark's tiny ViT) are JSON configs in `configs/`,
registered with open_clip through its public `add_model_config`. Extra weight sources (the
embedded benchmark's self-pretrained weights) register a resolver for a pseudo-tag.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeAlias

import open_clip
import torch
from torch import nn

from .. import flags
from ..errors import UserError
from ..io import load_weights, read_json
from ..state_dicts import state_mismatch
from ..storage.checksums import cached_file_digest
from ..storage.pickles import load_tensor_pickle

# What create_clip builds: one of open_clip's model classes (untyped, so Any to mypy).
OpenClipModel: TypeAlias = open_clip.CLIP | open_clip.CustomTextCLIP | open_clip.CoCa

CONFIG_DIR = Path(__file__).with_name("configs")
open_clip.add_model_config(CONFIG_DIR)

# (model name, pseudo-tag) -> function(cache_dir, progress) returning a local full-CLIP weights
# file, creating it if needed (the embedded benchmark pretrains its own tiny CLIP this way;
# progress: whether that may show a progress bar).
_WEIGHT_RESOLVERS: dict[tuple[str, str], Callable[[str | None, bool], Path]] = {}
# Architectures registered at run time (from a weights file's or a checkpoint's metadata); their
# config travels in the metadata of everything built from them so any process can rebuild them.
_RUNTIME_CONFIGS: set[str] = set()



@contextlib.contextmanager
def quiet_random_init(level: int = logging.ERROR) -> Iterator[None]:
    """Silence open_clip's root-logger messages below `level` for the block.

    ERROR hides its 'initialized randomly' warning where we load the weights ourselves next;
    CRITICAL also hides its 'Failed to download' line, which the suite replaces with its own.
    """
    root = logging.getLogger()
    previous = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(previous)


def register_weight_source(model_name: str, tag: str, resolver: Callable[[str | None, bool], Path]) -> None:
    """Make `--pretrained <tag>` for `model_name` resolve to a local file produced by `resolver`."""
    _WEIGHT_RESOLVERS[(model_name, tag)] = resolver


def _weight_resolvers() -> dict[tuple[str, str], Callable[[str | None, bool], Path]]:
    """The registered weight sources, the built-in plug-ins' (the embedded TinyCLIP) included:
    they register themselves on this first read, so no caller has to."""
    from ..plugins import register_builtin_weights

    register_builtin_weights()
    return _WEIGHT_RESOLVERS


def runtime_model_configs() -> dict[str, dict[str, Any]]:
    """The architectures this process registered at run time (imported checkpoints, tests' models),
    for a worker process to register in turn: it starts with the shipped configs only."""
    return {name: config for name in sorted(_RUNTIME_CONFIGS) if (config := open_clip.get_model_config(name)) is not None}


def register_model_config(name: str, config: dict[str, Any]) -> None:
    """Register a NEW open_clip architecture from a config dict (an imported checkpoint's metadata).

    A name that is already registered is never redefined: a weights file may describe the
    architecture it was built with, but it cannot change what every later model of that name is.
    """
    registered = open_clip.get_model_config(name)
    if registered is not None:
        if registered != config:
            raise UserError(
                f"the metadata of these weights describes architecture '{name}' differently from the registered one; "
                "the file was made with another definition of it: use weights saved with this code's definition"
            )
        return
    _RUNTIME_CONFIGS.add(name)
    folder = Path(tempfile.mkdtemp(prefix="ta_model_config_"))
    (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
@dataclass(frozen=True)
class ModelSpec:
    """Which CLIP to build: architecture name and weight source.

    pretrained: None (random init), an open_clip tag such as "openai", a registered pseudo-tag,
    or a path to a local weights file (open_clip .pt/.bin state dict or our .safetensors).
    """

    name: str
    pretrained: str | None = None
    cache_dir: str | None = None

    @property
    def model_id(self) -> str:
        """Folder name under checkpoints/ and results/ for this architecture + weights."""
        if self.pretrained is None:
            return f"{self.name}-random"
        if _is_file_source(self.pretrained):
            return f"{self.name}-{Path(self.pretrained).stem}"
        return f"{self.name}-{self.pretrained}"

    def metadata(self) -> dict[str, Any]:
        register_source_config(self.name, self.pretrained)
        meta: dict[str, Any] = {
            "model_name": self.name,
            "weight_source": self.pretrained if self.pretrained is not None else "random",
            "model_id": self.model_id,
            "quick_gelu": _uses_quick_gelu(self),
        }
        if self.pretrained is not None and _is_file_source(self.pretrained) and Path(self.pretrained).is_file():
            meta["weight_digest"] = weight_file_digest(Path(self.pretrained))
        config = open_clip.get_model_config(self.name)
        if config is not None and ((CONFIG_DIR / f"{self.name}.json").is_file() or self.name in _RUNTIME_CONFIGS):
            meta["model_config"] = config
        return meta


def check_cache_source(cache_metadata: dict[str, Any], spec: ModelSpec, cache_file: Path) -> None:
    """Refuse a cache (theta_0, a head) built from another weights file with the same model id.

    A file source's model id comes from its name, and hub downloads share names (every open_clip
    checkpoint on the Hugging Face hub is `open_clip_pytorch_model.bin`), so two different
    files can land in the same folder; reusing the first one's theta_0 would be silently wrong.
    """
    saved = cache_metadata.get("weight_digest")
    if saved is None or spec.pretrained is None or not _is_file_source(spec.pretrained) or not Path(spec.pretrained).is_file():
        return
    current = weight_file_digest(Path(spec.pretrained))
    if saved != current:
        raise UserError(
            f"{cache_file} was built from a different weights file than {spec.pretrained} (sha256 {saved} vs {current}), "
            f"though both map to model id '{spec.model_id}'; give the weights file a distinct name or use another --checkpoint-root"
        )


def weight_file_digest(path: Path) -> str:
    """A short content digest of a weights file, hashed once per process while it is unchanged."""
    return cached_file_digest(path)[:16]


def parse_pretrained(text: str) -> str | None:
    """The --pretrained flag: 'none' or 'random' mean random initialisation (flags.pretrained)."""
    return flags.pretrained(text)


def _is_file_source(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))


def source_metadata(pretrained: str | None) -> dict[str, Any]:
    """The metadata JSON beside a weights file (an imported checkpoint declares its architecture
    and activation there); empty for tags, random init and plain state-dict files."""
    if pretrained is None or not _is_file_source(pretrained) or Path(pretrained).suffix != ".safetensors":
        return {}
    meta_file = Path(pretrained).with_suffix(".json")
    return read_json(meta_file) if meta_file.is_file() else {}


def register_source_config(name: str, pretrained: str | None) -> None:
    """Register the architecture a weights file's metadata carries, so `name` can be built."""
    meta = source_metadata(pretrained)
    if meta.get("model_name") == name and "model_config" in meta:
        register_model_config(name, meta["model_config"])


def _uses_quick_gelu(spec: ModelSpec) -> bool:
    # open_clip 3.x no longer switches the activation for the `openai` tag by itself; the weights
    # were trained with QuickGELU, so we follow the tag's declared activation. A file declares it
    # in its metadata (imported OpenAI-derived weights); a bare state-dict file cannot.
    if spec.pretrained is None:
        return False
    if _is_file_source(spec.pretrained):
        return bool(source_metadata(spec.pretrained).get("quick_gelu", False))
    return bool(open_clip.get_pretrained_cfg(spec.name, spec.pretrained).get("quick_gelu", False))


def check_model_name(name: str, pretrained: str | None = None) -> None:
    """A UserError unless `name` is an open_clip architecture (or one `pretrained`'s metadata declares)."""
    register_source_config(name, pretrained)
    if open_clip.get_model_config(name) is None:
        known = ", ".join(m for m in open_clip.list_models() if m.startswith(("ViT-B", "ViT-L", "Tiny")))
        raise UserError(f"unknown model '{name}'; choose an open_clip architecture such as {known} (open_clip.list_models() lists all)")


def create_clip(spec: ModelSpec, device: str | torch.device = "cpu", progress: bool = True) -> tuple[OpenClipModel, Callable, Callable]:
    """Return (clip_model, train_preprocess, val_preprocess) with the spec's weights loaded.

    progress: a weight source that has to be made first (pretrained) may show a progress bar.
    """
    check_model_name(spec.name, spec.pretrained)
    quick_gelu = _uses_quick_gelu(spec)
    source = spec.pretrained
    resolvers = _weight_resolvers()
    if source is not None and (spec.name, source) in resolvers:
        source = str(resolvers[(spec.name, source)](spec.cache_dir, progress))
    if source is None or _is_file_source(source):
        with quiet_random_init():
            model, train_tf, val_tf = open_clip.create_model_and_transforms(
                spec.name, pretrained=None, force_quick_gelu=quick_gelu, device="cpu"
            )
        if source is not None:
            load_clip_state(model, read_state_dict(Path(source)), what=f"weights file {source}", spec=spec)
    else:
        model, train_tf, val_tf = _create_from_tag(spec, quick_gelu)
    model.eval()
    return model.to(device), train_tf, val_tf


def _create_from_tag(spec: ModelSpec, quick_gelu: bool):
    tags = open_clip.list_pretrained_tags_by_model(spec.name) + [t for (m, t) in _weight_resolvers() if m == spec.name]
    if spec.pretrained not in tags:
        raise UserError(
            f"unknown pretrained tag '{spec.pretrained}' for {spec.name}; valid tags: {', '.join(tags) or 'none'}, "
            "or pass a path to a local weights file"
        )
    try:
        with quiet_random_init(logging.CRITICAL):
            return open_clip.create_model_and_transforms(
                spec.name, pretrained=spec.pretrained, force_quick_gelu=quick_gelu, cache_dir=spec.cache_dir, device="cpu"
            )
    except RuntimeError as err:
        cache = spec.cache_dir or "~/.cache/huggingface"
        raise UserError(
            f"weights {spec.name}/{spec.pretrained} are not in the cache ({cache}) and cannot be downloaded here; "
            f"on a machine with internet run `TA_ALLOW_DOWNLOAD=1 python src/download_weights.py --model {spec.name} "
            f"--pretrained {spec.pretrained} --cache-dir <dir>` and pass --cache-dir <dir>, "
            "or pass --pretrained /path/to/weights.pt"
        ) from err


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"weights file {path} {problem}; pass an existing .pt/.bin/.safetensors file")
    if path.suffix == ".safetensors":
        tensors, _ = load_weights(path)
        return tensors
    state = load_tensor_pickle(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"weights file {path} holds a {type(state).__name__}, expected a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_clip_state(model: nn.Module, state: dict[str, torch.Tensor], what: str, spec: ModelSpec) -> None:
    """Load a state dict strictly; a mismatch names the expected architecture."""
    check_state_matches(model, state, what=what, expected=spec.name)
    model.load_state_dict(state, strict=True)


def check_state_matches(model: nn.Module, state: dict[str, torch.Tensor], what: str, expected: str) -> None:
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise UserError(f"{what} does not match architecture {expected}: {problem}; pass weights of a {expected} model or the matching --model")


def transforms_for(spec: ModelSpec) -> tuple[Callable, Callable]:
    """(train, val) image transforms of `spec` as create_clip makes them, without building the
    model or reading any weights (the decode cache's `prepare_datasets.py cache` needs only these)."""
    from dataclasses import asdict

    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

    check_model_name(spec.name, spec.pretrained)
    config = open_clip.get_model_config(spec.name) or {}
    cfg = merge_preprocess_dict(asdict(PreprocessCfg()), config.get("preprocess_cfg", {}))
    if spec.pretrained is not None and not _is_file_source(spec.pretrained):
        cfg = merge_preprocess_dict(cfg, open_clip.get_pretrained_cfg(spec.name, spec.pretrained) or {})
    cfg = merge_preprocess_dict(cfg, source_metadata(spec.pretrained).get("preprocess_cfg", {}) or {})
    cfg["size"] = config.get("vision_cfg", {}).get("image_size", cfg["size"])
    pp = PreprocessCfg(**cfg)
    return image_transform_v2(pp, is_train=True), image_transform_v2(pp, is_train=False)
