"""Public CLIP checkpoints into the suite: theta_0 from an HF CLIPModel, fine-tuned runs from HF
CLIPVisionModel folders or open_clip state-dict files.

theta_0 becomes a whole open_clip state dict at <checkpoint_root>/pretrained/<name>.safetensors
whose metadata declares the architecture and activation, so `--model <arch> --pretrained <that
file>` works in every script (its text tower builds the heads there). Each fine-tuned model
becomes checkpoints/<model_id>/<task>/standard-<tag>/finetuned.safetensors, a finished
standard run for every evaluation, the report, merging and `--init-from`.

An import is all or nothing: every source is read and checked against theta_0 (architecture,
activation, distance) and every destination against what is already on disk before anything is
written, and what an import wrote is removed again if writing fails half-way. The fine-tuned
models are read twice (checked, then written) so that memory holds one model at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import open_clip
import torch

from ..data.registry import get_task
from ..errors import UserError
from ..flags import check_float
from ..io import load_weights, metadata_path, save_weights
from ..merging.modelpool.hf_clip import hf_from_pretrained
from ..models.encoder import ENCODER_FORMAT
from ..models.factory import ModelSpec, read_state_dict, register_model_config
from ..models.pretrained import zeroshot_encoder
from ..paths import Layout, check_name
from ..recipes import RunId
from ..state_dicts import state_mismatch
from . import DEFAULT_MAX_DISTANCE
from .hf_convert import HF_ACTIVATIONS, canonical, clip_to_open_clip, custom_name, named_config, open_clip_config, vision_cfg, vision_to_open_clip, vision_tower, visual_geometry

if TYPE_CHECKING:
    from transformers import CLIPModel, CLIPVisionConfig

STATE_FORMAT = "open_clip_state_dict"
PROJECTION_FILE = "visual_projection.safetensors"  # beside an exported CLIPVisionModel (it has no projection)


@dataclass(frozen=True)
class Pretrained:
    """theta_0 converted in memory; nothing of it is on disk until the import writes it."""

    arch: str
    named: bool  # a built-in open_clip architecture (else registered from the file's metadata)
    quick_gelu: bool
    config: dict[str, Any]  # the open_clip architecture
    state: dict[str, torch.Tensor]  # the whole open_clip CLIP (the text tower builds the heads)
    metadata: dict[str, Any]
    weights_file: Path

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.arch, str(self.weights_file))

    @property
    def visual(self) -> dict[str, torch.Tensor]:
        return {k.removeprefix("visual."): v for k, v in self.state.items() if k.startswith("visual.")}


@dataclass(frozen=True)
class Finetuned:
    task: str  # the registered task name
    source: Path


@dataclass(frozen=True)
class ImportResult:
    base: Pretrained
    runs: tuple[tuple[str, Path, float], ...]  # (task, run file, distance to theta_0)


def read_pretrained_hf(folder: Path, layout: Layout, name: str | None = None, model: str | None = None) -> Pretrained:
    """theta_0 of an HF CLIPModel folder as an open_clip state dict, in memory (registers a new
    architecture in this process only)."""
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
    meta = {"format": STATE_FORMAT, "model_name": arch, "quick_gelu": quick_gelu, "imported_from": str(folder), "hf_config": clip.config.to_dict()}
    if found is None:
        # Only an architecture open_clip lacks is described by the file (and registered from it in
        # every process); a built-in one is open_clip's own definition, which the file must not restate.
        meta["model_config"] = config
    return Pretrained(arch, found is not None, quick_gelu, config, state, meta, weights_file)


def _same_tensors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# The fields of theta_0's metadata that other processes act on (building the architecture).
_DESCRIBING = ("format", "model_name", "model_config", "quick_gelu")


def _pretrained_on_disk(base: Pretrained) -> str:
    """'absent', 'same', or 'redescribe' (these weights, described by an older import: the metadata
    is rewritten, the weights are the same); refuses a file holding other weights."""
    if not base.weights_file.is_file():
        return "absent"
    existing, meta = load_weights(base.weights_file)
    if not _same_tensors(existing, base.state):
        raise UserError(f"{base.weights_file} already holds other weights; pass another --name or remove it if it is no longer needed")
    return "same" if all(meta.get(k) == base.metadata.get(k) for k in _DESCRIBING) else "redescribe"


def read_finetuned(source: Path, base: Pretrained) -> dict[str, torch.Tensor]:
    """The open_clip visual state of a fine-tuned model: an HF CLIPVisionModel or CLIPModel folder,
    an open_clip state-dict file (whole CLIP or visual tower), or an encoder file of this suite."""
    source = Path(source).expanduser()
    if source.is_dir():
        return _read_hf_finetuned(source, base)
    if not source.is_file():
        raise UserError(f"fine-tuned checkpoint {source} does not exist; pass an HF folder or a state-dict file")
    state = read_state_dict(source)
    if any(k.startswith("visual.") for k in state):
        state = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    declared = _declared_quick_gelu(source)
    if declared is not None and declared != base.quick_gelu:
        raise UserError(f"{source} uses {_activation(declared)}, theta_0 {_activation(base.quick_gelu)}; import it with the model it was fine-tuned from")
    return state


def _declared_quick_gelu(source: Path) -> bool | None:
    """The activation a suite-written .safetensors declares in its metadata (a bare state dict declares none)."""
    meta_file = metadata_path(source)
    if source.suffix != ".safetensors" or not meta_file.is_file():
        return None
    value = load_weights(source)[1].get("quick_gelu")
    return bool(value) if value is not None else None


def _activation(quick_gelu: bool) -> str:
    return "QuickGELU" if quick_gelu else "GELU"


def _read_hf_finetuned(folder: Path, base: Pretrained) -> dict[str, torch.Tensor]:
    from transformers import CLIPModel, CLIPVisionModel

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserError(f"{folder} has no config.json; pass a Hugging Face CLIPVisionModel or CLIPModel folder")
    try:
        whole = "vision_config" in json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{config_file} is not valid JSON; replace the folder with an intact copy") from err
    model = hf_from_pretrained(CLIPModel if whole else CLIPVisionModel, str(folder), None, str(folder))
    # transformers types a sub-config field as its constructor's input (dict | config | None); it holds the config.
    vision = cast("CLIPVisionConfig", model.config.vision_config if whole else model.config)
    theirs = vision_cfg(vision)
    ours = canonical(base.config)
    assert ours is not None  # theta_0 came from an HF CLIP config, so it is a plain CLIP ViT
    differences = [f"{k} {theirs[k]} (theta_0: {ours['vision_cfg'][k]})" for k in theirs if theirs[k] != ours["vision_cfg"][k]]
    if HF_ACTIVATIONS[vision.hidden_act] != base.quick_gelu:
        differences.append(f"activation {vision.hidden_act} (theta_0: {'quick_gelu' if base.quick_gelu else 'gelu'})")
    if differences:
        raise UserError(f"{folder} is a different architecture than theta_0: {', '.join(differences)}; import it with the CLIPModel it was fine-tuned from")
    if whole:
        projection = cast("CLIPModel", model).visual_projection.weight.detach()
    elif (folder / PROJECTION_FILE).is_file():
        projection = load_weights(folder / PROJECTION_FILE)[0]["weight"]
    else:
        # The public CLIPVisionModel checkpoints have no projection: their fine-tuning kept theta_0's.
        projection = base.visual["proj"].t()
    return vision_to_open_clip(vision_tower(model).state_dict(), projection, int(vision.num_hidden_layers))


def relative_distance(theta0: Mapping[str, torch.Tensor], theta: Mapping[str, torch.Tensor]) -> float:
    diff = sum(float((theta[k].double() - theta0[k].double()).pow(2).sum()) for k in theta0)
    norm = sum(float(theta0[k].double().pow(2).sum()) for k in theta0)
    return (diff / max(norm, 1e-30)) ** 0.5


def check_base(base: Pretrained, state: Mapping[str, torch.Tensor], source: Path, max_distance: float) -> float:
    """Refuse a model of another geometry or one not fine-tuned from theta_0; the distance."""
    theta0 = base.visual
    if {"conv1.weight", "positional_embedding"} <= set(state):
        ours, theirs = visual_geometry(theta0), visual_geometry(state)
        differences = [f"{k} {theirs[k]} (theta_0: {ours[k]})" for k in ours if theirs[k] != ours[k]]
        if differences:
            raise UserError(f"{source} is a different architecture than theta_0 {base.arch}: {', '.join(differences)}; import it with the model it was fine-tuned from")
    problem = state_mismatch(theta0, state)
    if problem:
        raise UserError(f"{source} does not match theta_0's architecture {base.arch}: {problem}; import it with the model it was fine-tuned from")
    distance = relative_distance(theta0, state)
    if distance > max_distance:
        raise UserError(
            f"{source} is {distance:.3f} (relative L2) away from theta_0 {base.spec.model_id}, above {max_distance}: "
            "it was not fine-tuned from these weights; import it with its own base model (or raise --max-distance if you are sure)"
        )
    return distance


def _run_on_disk(path: Path, state: Mapping[str, torch.Tensor]) -> bool:
    """True when the run file already holds this import; refuses a different run there."""
    if not metadata_path(path).is_file():
        return False
    existing, meta = load_weights(path)
    if meta.get("imported_from") is None or not _same_tensors(existing, state):
        raise UserError(f"{path} already holds a different run; use another --tag or remove that run folder first")
    return True


def _checked(base: Pretrained, item: Finetuned, max_distance: float) -> tuple[dict[str, torch.Tensor], float]:
    state = read_finetuned(item.source, base)
    return state, check_base(base, state, item.source, max_distance)


def import_checkpoints(
    folder: Path, finetuned: Sequence[tuple[str, Path]], layout: Layout, tag: str,
    name: str | None = None, model: str | None = None, max_distance: float = DEFAULT_MAX_DISTANCE,
) -> ImportResult:
    """theta_0 from the HF CLIPModel `folder` and each (task, source) as the finished standard-<tag>
    run of its task; all checked before anything is written."""
    check_float("--max-distance", max_distance, 0.0, lo_open=True)  # NaN would switch the check off
    items = [Finetuned(get_task(task).name, Path(source)) for task, source in finetuned]
    seen: dict[str, Path] = {}
    for item in items:
        if item.task in seen:
            raise UserError(f"task {item.task} is given twice ({seen[item.task]} and {item.source}); import one model per task and --tag")
        seen[item.task] = item.source
    base = read_pretrained_hf(folder, layout, name, model)
    run = RunId.of(tag=tag)  # an imported fine-tune is a plain (non-linear, unregularised) run
    paths = {item.task: layout.finetuned(base.spec.model_id, item.task, run.name) for item in items}
    # Pass 1: every source and destination, nothing written.
    base_on_disk = _pretrained_on_disk(base)
    for item in items:
        state, _ = _checked(base, item, max_distance)
        _run_on_disk(paths[item.task], state)
        del state
    # Pass 2: write; on any failure remove what this import created.
    created: list[Path] = []
    runs: list[tuple[str, Path, float]] = []
    try:
        if base_on_disk != "same":
            save_weights(base.weights_file, base.state, base.metadata)
            if base_on_disk == "absent":
                created.append(base.weights_file)
        zeroshot_file = layout.zeroshot(base.spec.model_id)
        zeroshot_present = metadata_path(zeroshot_file).is_file()
        # theta_0 in the path scheme, checked against the architecture; its module then carries each
        # run's weights in turn, with theta_0's metadata (model id, digest of the weights file).
        encoder = zeroshot_encoder(base.spec, layout)
        if not zeroshot_present:
            created.append(zeroshot_file)
        for item in items:
            state, distance = _checked(base, item, max_distance)
            path = paths[item.task]
            if not _run_on_disk(path, state):
                encoder.visual.load_state_dict(state)
                extra = {"format": ENCODER_FORMAT, "mode": run.mode.name, "reg": run.reg.name, "variant": run.variant, "task": item.task, "run": run.name,
                         "imported_from": str(item.source), "distance_to_theta0": distance, "steps": 0}
                encoder.save(path, extra)
                created.append(path)
            runs.append((item.task, path, distance))
    except BaseException:
        for path in reversed(created):
            path.unlink(missing_ok=True)
            metadata_path(path).unlink(missing_ok=True)
        raise
    return ImportResult(base, tuple(runs))
