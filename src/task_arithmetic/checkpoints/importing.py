"""Public CLIP checkpoints into the suite: theta_0 from an HF CLIPModel, fine-tuned runs from HF
CLIPVisionModel folders or open_clip state-dict files.

theta_0 becomes a whole open_clip state dict at <checkpoint_root>/pretrained/<name>.safetensors
whose metadata declares the architecture and activation, so `--model <arch> --pretrained <that
file>` works in every script (its text tower builds the heads there). Each fine-tuned model
becomes checkpoints/<model_id>/<task>/standard-<tag>/finetuned.safetensors, a finished
standard run for every evaluation, the report, merging and `--init-from`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch

from ..data.registry import get_task
from ..errors import UserError
from ..io import load_weights, metadata_path, save_weights
from ..merging.modelpool.hf_clip import hf_from_pretrained
from ..models.encoder import ENCODER_FORMAT, ImageEncoder
from ..models.factory import ModelSpec, read_state_dict, register_model_config
from ..models.pretrained import zeroshot_encoder
from ..flags import check_float
from ..paths import Layout, check_name
from ..recipes import RunId
from ..state_dicts import state_mismatch
from .hf_convert import canonical, clip_to_open_clip, custom_name, named_config, open_clip_config, vision_cfg, vision_to_open_clip, vision_tower

STATE_FORMAT = "open_clip_state_dict"
PROJECTION_FILE = "visual_projection.safetensors"  # beside an exported CLIPVisionModel (it has no projection)
# A fine-tuned model this far from theta_0 (relative L2 distance of the image tower) was not
# fine-tuned from it: two independent weight sets of similar norm are ~1.4 apart, a fine-tuning
# run at CLIP's learning rates a small fraction of that.
DEFAULT_MAX_DISTANCE = 0.5


@dataclass(frozen=True)
class ImportedBase:
    spec: ModelSpec
    weights_file: Path
    named: bool  # the architecture is a built-in open_clip name (else registered from the file)


def import_pretrained_hf(folder: Path, layout: Layout, name: str | None = None, model: str | None = None) -> ImportedBase:
    """Convert an HF CLIPModel folder to an open_clip weights file and build theta_0 from it."""
    from transformers import CLIPModel

    clip = hf_from_pretrained(CLIPModel, str(folder), None, "--pretrained-hf")
    config, quick_gelu = open_clip_config(clip.config)
    found = named_config(config)
    # --model may name an architecture open_clip lacks, never re-define one it has.
    if model is not None and model != found and (found is not None or open_clip.get_model_config(model) is not None):
        raise UserError(f"--model {model} does not describe {folder} (its architecture is {found or 'not a built-in one'}); drop --model")
    arch = model or found or custom_name(config)
    if found is None:
        register_model_config(arch, config)
    state = clip_to_open_clip(clip, config)
    weights_file = Path(layout.checkpoint_root) / "pretrained" / f"{check_name('--name', name or Path(folder).expanduser().resolve().name)}.safetensors"
    meta = {
        "format": STATE_FORMAT,
        "model_name": arch,
        "model_config": config,
        "quick_gelu": quick_gelu,
        "imported_from": str(folder),
        "hf_config": clip.config.to_dict(),
    }
    _write_unless_same(weights_file, state, meta)
    spec = ModelSpec(arch, str(weights_file))
    zeroshot_encoder(spec, layout)  # theta_0 in the path scheme, checked against the architecture
    return ImportedBase(spec, weights_file, found is not None)


def _write_unless_same(path: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write the file; an existing different one is kept and refused (never overwrite good data)."""
    if path.is_file():
        existing, _ = load_weights(path)
        same = set(existing) == set(state) and all(torch.equal(existing[k], state[k]) for k in state)
        if same:
            return
        raise UserError(f"{path} already holds other weights; pass another --name or remove it if it is no longer needed")
    save_weights(path, state, meta)


def read_finetuned(source: Path, theta0: ImageEncoder) -> dict[str, torch.Tensor]:
    """The open_clip visual state of a fine-tuned model: an HF CLIPVisionModel or CLIPModel folder,
    an open_clip state-dict file (whole CLIP or visual tower), or an encoder file of this suite."""
    source = Path(source).expanduser()
    if source.is_dir():
        return _read_hf_finetuned(source, theta0)
    if not source.is_file():
        raise UserError(f"fine-tuned checkpoint {source} does not exist; pass an HF folder or a state-dict file")
    state = read_state_dict(source)
    if any(k.startswith("visual.") for k in state):
        state = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    return state


def _read_hf_finetuned(folder: Path, theta0: ImageEncoder) -> dict[str, torch.Tensor]:
    from transformers import CLIPModel, CLIPVisionModel

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserError(f"{folder} has no config.json; pass a Hugging Face CLIPVisionModel or CLIPModel folder")
    whole = "vision_config" in json.loads(config_file.read_text())
    model = hf_from_pretrained(CLIPModel if whole else CLIPVisionModel, str(folder), None, str(folder))
    vision = model.config.vision_config if whole else model.config
    ours = canonical(theta0.metadata.get("model_config") or _config_of(theta0))
    if ours is None or vision_cfg(vision) != ours["vision_cfg"]:
        raise UserError(
            f"{folder} is a different architecture ({vision_cfg(vision)}) than theta_0 {theta0.metadata.get('model_id')} "
            f"({ours and ours['vision_cfg']}); import it with the CLIPModel it was fine-tuned from"
        )
    if whole:
        projection = model.visual_projection.weight.detach()
    elif (folder / PROJECTION_FILE).is_file():
        projection = load_weights(folder / PROJECTION_FILE)[0]["weight"]
    else:
        # The public CLIPVisionModel checkpoints have no projection: their fine-tuning kept theta_0's.
        projection = theta0.weights()["proj"].t()
    return vision_to_open_clip(vision_tower(model).state_dict(), projection, int(vision.num_hidden_layers))


def _config_of(encoder: ImageEncoder) -> dict[str, Any]:
    import open_clip

    return open_clip.get_model_config(encoder.model_name) or {}


def relative_distance(theta0: dict[str, torch.Tensor], theta: dict[str, torch.Tensor]) -> float:
    diff = sum(float((theta[k].double() - theta0[k].double()).pow(2).sum()) for k in theta0)
    norm = sum(float(theta0[k].double().pow(2).sum()) for k in theta0)
    return (diff / max(norm, 1e-30)) ** 0.5


def check_base(theta0: ImageEncoder, state: dict[str, torch.Tensor], source: Path, max_distance: float) -> float:
    """Refuse a model of another architecture or one not fine-tuned from theta_0; the distance."""
    check_float("--max-distance", max_distance, 0.0, lo_open=True)  # NaN would switch the check off
    problem = state_mismatch(theta0.weights(), state)
    if problem:
        raise UserError(f"{source} does not match theta_0's architecture {theta0.model_name}: {problem}; import it with the model it was fine-tuned from")
    distance = relative_distance(theta0.weights(), state)
    if distance > max_distance:
        raise UserError(
            f"{source} is {distance:.3f} (relative L2) away from theta_0 {theta0.metadata.get('model_id')}, above {max_distance}: "
            "it was not fine-tuned from these weights; import it with its own base model (or raise --max-distance if you are sure)"
        )
    return distance


def import_finetuned(
    spec: ModelSpec, layout: Layout, task: str, source: Path, tag: str, max_distance: float = DEFAULT_MAX_DISTANCE
) -> tuple[Path, float]:
    """Write `source` as the finished standard-<tag> run of `task`; (its path, distance to theta_0)."""
    task = get_task(task).name
    theta0 = zeroshot_encoder(spec, layout)
    state = read_finetuned(source, theta0)
    distance = check_base(theta0, state, source, max_distance)
    run = RunId.of(tag=tag)  # an imported fine-tune is a plain (non-linear, unregularised) run
    path = layout.finetuned(spec.model_id, task, run.name)
    encoder = theta0  # freshly loaded above: reuse its module and metadata for the fine-tuned weights
    encoder.visual.load_state_dict(state)
    if metadata_path(path).is_file():
        existing, meta = load_weights(path)
        if meta.get("imported_from") is None or not all(torch.equal(existing[k], v) for k, v in state.items()):
            raise UserError(f"{path} already holds a different run; use another --tag or remove that run folder first")
        return path, distance
    extra = {"format": ENCODER_FORMAT, "mode": run.mode.name, "reg": run.reg.name, "variant": run.variant, "task": task, "run": run.name,
             "imported_from": str(source), "distance_to_theta0": distance, "steps": 0}
    encoder.save(path, extra)
    return path, distance
