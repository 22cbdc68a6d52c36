"""A tiny, self-contained world of fake fine-tuned runs for tests and benchmarks.

TinyCLIP (or another open_clip model) with random weights as theta_0, toy tensor tasks registered
in the task registry, and "fine-tuned" runs that are theta_0 plus a random perturbation, saved
exactly as fine-tuning saves them (ImageEncoder.save at layout.finetuned with the contract's
metadata). Labels of task
t are the predictions of theta_0 + d_t through t's head (d_t: the direction every recipe's tau_t shares), so fine-tuning "helps"
and edits have something to gain or lose; the control task's labels are theta_0's predictions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import TensorDataset

from task_arithmetic.data.registry import TaskSpec, get_task, register_task
from task_arithmetic.models.factory import ModelSpec, create_clip
from task_arithmetic.models.heads import get_head
from task_arithmetic.models.pretrained import zeroshot_encoder
from task_arithmetic.paths import Layout
from task_arithmetic.recipes import RunId

TOY_BENCHMARK = "toy"


@dataclass(frozen=True)
class ToyWorld:
    spec: ModelSpec
    layout: Layout
    data_location: Path
    tasks: tuple[str, ...]
    control: str


def _images(name: str, split: str, n: int, seed: int, size: int) -> torch.Tensor:
    # One generator per (task, split): the data never depends on the order tasks are built in.
    key = sum(ord(c) * 31**i for i, c in enumerate(f"{name}/{split}")) % (2**31)
    generator = torch.Generator().manual_seed(seed * 7919 + key)
    return torch.randn(n, 3, size, size, generator=generator)


def _perturbation(weights: dict[str, torch.Tensor], scale: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random direction with each tensor's step proportional to its typical magnitude."""
    out = {}
    for key, value in weights.items():
        if not torch.is_floating_point(value):
            continue
        size = value.abs().mean().clamp_min(1e-3)
        out[key] = scale * size * torch.randn(value.shape, generator=generator, dtype=value.dtype)
    return out


def _register(name: str, classnames: list[str], splits: dict[str, TensorDataset], is_control: bool) -> None:
    register_task(
        TaskSpec(
            name=name,
            benchmark=TOY_BENCHMARK,
            templates=("a photo of a {}.", "a picture of a {}."),
            load_split=lambda location, split, transform, _s=splits: _s[split],
            load_classnames=lambda location, _c=tuple(classnames): list(_c),
            expected_layout="generated in memory by tests/toyruns.py",
            is_control=is_control,
            tensor_native=True,
        )
    )


def _labels(model: torch.nn.Module, head: torch.nn.Module, images: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    # In chunks: thousands of 224 px images at once would not fit a GPU's activations.
    device = next(head.parameters()).device
    parts = [head(model(images[i : i + chunk].to(device))).argmax(dim=-1).cpu() for i in range(0, len(images), chunk)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def build_toy_world(
    root: Path,
    n_tasks: int = 3,
    n_val: int = 24,
    n_test: int = 24,
    num_classes: int = 5,
    scale: float = 0.3,
    recipes: Sequence[tuple[str, str] | str] = (("standard", "none"), ("linear", "none")),
    seed: int = 0,
    prefix: str = "Toy",
    model: str = "TinyCLIP",
    device: str | torch.device = "cpu",
) -> ToyWorld:
    """Register toy tasks and save theta_0, heads and fake fine-tuned runs under `root`.

    n_val is the size of each task's Val held-out part (the train split gets 10x as many).
    recipes: (mode, reg) pairs or run names of fine-tuning runs to fake; each recipe's tau_t is a direction
    shared by task t plus a smaller part of its own. model: any open_clip architecture (random
    weights, images at its input size); device: where the labels are computed (a GPU for large models).
    """
    torch.manual_seed(seed)
    root = Path(root)
    spec = ModelSpec(model)
    layout = Layout(root / "checkpoints", root / "results")
    data_location = root / "data"
    theta0 = zeroshot_encoder(spec, layout)
    base = theta0.weights()
    tasks = [f"{prefix}{i}" for i in range(n_tasks)]
    control = f"{prefix}Control"
    sizes = {"train": 10 * n_val, "test": n_test}
    size = theta0.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = {name: {split: _images(name, split, n, seed, size) for split, n in sizes.items()} for name in [*tasks, control]}
    classnames = {name: [f"{name.lower()} class {c}" for c in range(num_classes)] for name in [*tasks, control]}
    placeholder = {split: TensorDataset(x, torch.zeros(len(x), dtype=torch.long)) for split, x in images[control].items()}
    for name in [*tasks, control]:
        _register(name, classnames[name], placeholder, is_control=name == control)

    # One text tower for every head (task_head would build a fresh CLIP per task); the heads land
    # in the same cache that task_head reads.
    clip_model, _, _ = create_clip(spec)
    heads = {
        name: get_head(spec, name, classnames[name], get_task(name).templates, layout, clip_model=clip_model) for name in [*tasks, control]
    }
    del clip_model
    generator = torch.Generator().manual_seed(seed + 1)
    # Every recipe's tau_t shares task t's direction (as real fine-tuning on the same data would)
    # plus its own smaller part; labels come from the shared direction.
    shared = {t: _perturbation(base, scale, generator) for t in tasks}
    vectors = {}
    for recipe in recipes:
        own = {t: _perturbation(base, 0.3 * scale, generator) for t in tasks}
        run_id = RunId.parse(recipe) if isinstance(recipe, str) else RunId.of(*recipe)
        vectors[run_id] = {t: {k: shared[t][k] + own[t][k] for k in shared[t]} for t in tasks}
    labelling = shared
    for name in [*tasks, control]:
        head = heads[name].to(device)
        labeller = copy.deepcopy(theta0)
        if name != control:
            labeller.visual.load_state_dict({k: v + labelling[name][k] if k in labelling[name] else v for k, v in base.items()})
        labeller.to(device)
        splits = {split: TensorDataset(x, _labels(labeller, head, x)) for split, x in images[name].items()}
        _register(name, classnames[name], splits, is_control=name == control)

    for run_id, per_task in vectors.items():
        run = run_id.name
        for task, tau in per_task.items():
            finetuned = copy.deepcopy(theta0)
            finetuned.visual.load_state_dict({k: v + tau[k] if k in tau else v for k, v in base.items()})
            finetuned.save(
                layout.finetuned(spec.model_id, task, run),
                {
                    "mode": run_id.mode.name, "reg": run_id.reg.name, "variant": run_id.variant, "task": task, "run": run,
                    "config": {"toy": True, "scale": scale}, "seed": seed, "code_revision": "unknown", "steps": 0,
                },
            )
    return ToyWorld(spec, layout, data_location, tuple(tasks), control)
