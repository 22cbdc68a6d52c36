"""What a study will do, before it does it: every fine-tuning run with its steps and examples,
every evaluation, which are done, and the cost (image passes, and GPU hours from a calibration).

Nothing here reads weights or data, so a user can plan before downloading anything. Training-set
sizes come from NOMINAL_TRAIN_SIZES (the standard splits) or the embedded catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..data.splits import VAL_MAX
from ..io import metadata_path
from ..recipes import RunId
from ..recipes.base import StepCost
from ..training.config import resolve_config
from .definition import Study
from .graph import UnitKind, build_graph, pending_evaluations

# Official train-set sizes (before the suite's Val hold-out) of the splits the real tasks read
# (data/real/*.py); the plan's step counts come from these, the runs themselves from the data.
# Without one, a real20 plan could not count the twelve tasks of the 14/20-task suites.
NOMINAL_TRAIN_SIZES: dict[str, int] = {
    "Cars": 8144, "DTD": 3760, "EuroSAT": 21600, "GTSRB": 26640,
    "MNIST": 60000, "RESISC45": 18900, "SUN397": 19850, "SVHN": 73257,
    "Flowers102": 1020, "PCAM": 262144, "FER2013": 28709, "OxfordIIITPet": 3680, "STL10": 5000, "CIFAR100": 50000,
    "CIFAR10": 50000, "Food101": 75750, "FashionMNIST": 60000, "EMNIST": 124800, "KMNIST": 60000, "RenderedSST2": 6920,
}
# Seconds of GPU time per image pass, per architecture and kind of pass, measured by the GPU
# check (benchmarks/); none measured yet: pass --seconds-per-image.
CALIBRATION: dict[str, dict[str, float]] = {}
PASS_KINDS = ("plain", "linearized")



@dataclass(frozen=True)
class PlannedRun:
    task: str
    run: str
    steps: int | None  # None: the training-set size is not known before the data is there
    examples: int | None  # training images drawn (steps x batch)
    cost: StepCost | None  # image passes of the whole run by kind (set-up included); None when steps is
    penalty_examples: int  # inputs the regulariser sends through J_theta0 f (part of cost)
    done: bool
    partial: bool  # resumable state exists


@dataclass(frozen=True)
class PlannedEvaluation:
    recipe: str
    name: str
    done: bool


def train_size(task: str) -> int | None:
    if task in NOMINAL_TRAIN_SIZES:
        return NOMINAL_TRAIN_SIZES[task]
    from ..embedded.catalog import TASKS

    return next((t.train_size for t in TASKS if t.name == task), None)


def planned_run(study: Study, task: str, run: RunId) -> PlannedRun:
    """Steps from nominal sizes, and the image passes the run's plug-ins declare per step."""
    cfg = resolve_config(study.finetune_config(task, run), check_files=False)
    n = train_size(cfg.task)
    if n is not None:
        n -= min(math.floor(0.1 * n), VAL_MAX)  # the Val hold-out (its size up to rounding)
        if cfg.max_train_samples is not None:
            n = min(n, cfg.max_train_samples)
    steps = cfg.max_steps if cfg.max_steps is not None else (
        None if n is None else max(1, round((cfg.epochs or 1) * math.ceil(n / cfg.batch_size) * (cfg.steps_fraction or 1.0))))
    per_step, batch_only = cfg.step_cost(), cfg.run.mode.step_cost(cfg.batch_size)
    cost = None if steps is None else per_step * steps + cfg.setup_cost()
    penalty = 0 if steps is None else (per_step.linearized + per_step.plain - batch_only.linearized - batch_only.plain) * steps
    weights = study.layout.finetuned(study.spec.model_id, cfg.task, run.name)
    return PlannedRun(
        cfg.task, run.name, steps, None if steps is None else steps * cfg.batch_size, cost, penalty,
        metadata_path(weights).is_file(), study.layout.train_state(study.spec.model_id, cfg.task, run.name).exists(),
    )


@dataclass(frozen=True)
class Plan:
    runs: list[PlannedRun]
    evaluations: list[PlannedEvaluation]


def make_plan(study: Study) -> Plan:
    runs = [planned_run(study, u.task, u.run) for u in build_graph(study) if u.kind is UnitKind.FINETUNE and u.task and u.run]
    evaluations = []
    for recipe in study.recipes:
        pending = set(pending_evaluations(study, recipe))
        evaluations += [PlannedEvaluation(recipe.evaluated.name, n, n not in pending) for n in study.evaluations]
    return Plan(runs, evaluations)


def image_passes(plan: Plan, remaining_only: bool = False) -> dict[str, int | None]:
    """Training images through each kind of pass (penalty inputs and set-up passes included, as
    each plug-in declares them); None when some run's size is unknown. Evaluations are not counted."""
    totals: dict[str, int | None] = {kind: 0 for kind in PASS_KINDS}
    for run in plan.runs:
        if remaining_only and run.done:
            continue
        if run.cost is None:
            totals = {kind: None for kind in PASS_KINDS}
            continue
        for kind in PASS_KINDS:
            if totals[kind] is not None:
                totals[kind] = (totals[kind] or 0) + getattr(run.cost, kind)
    return totals


def gpu_hours(passes: dict[str, int | None], seconds_per_image: dict[str, float] | None) -> float | None:
    if not seconds_per_image or any(v is None for v in passes.values()) or set(passes) - set(seconds_per_image):
        return None
    return sum((passes[k] or 0) * seconds_per_image[k] for k in passes) / 3600


def format_plan(study: Study, plan: Plan, seconds_per_image: dict[str, float] | None) -> str:
    lines = [f"study of {study.spec.model_id} on {', '.join(study.tasks)}", f"fine-tuning runs ({len(plan.runs)}):"]
    for run in plan.runs:
        state = "done" if run.done else ("partial, resumes" if run.partial else "to do")
        size = "size unknown until the data is there" if run.steps is None else f"{run.steps} steps, {run.examples} examples"
        penalty = f" + {run.penalty_examples} penalty inputs" if run.penalty_examples else ""
        lines.append(f"  {run.task:<12s} {run.run:<24s} {size}{penalty}  [{state}]")
    lines.append(f"evaluations ({len(plan.evaluations)}):")
    for ev in plan.evaluations:
        lines.append(f"  {ev.recipe:<24s} {ev.name:<16s} [{'done' if ev.done else 'to do'}]")
    passes, left = image_passes(plan), image_passes(plan, remaining_only=True)
    def show(p: dict[str, int | None]) -> str:
        return ", ".join(f"{k} {'unknown' if v is None else f'{v:,}'}" for k, v in p.items())
    lines.append(f"cost: training image passes (forward+backward): {show(passes)}; still to do: {show(left)}; evaluations not counted")
    hours = gpu_hours(passes, seconds_per_image)
    if hours is None:
        lines.append(f"  GPU hours: no calibration for {study.spec.name}; pass --seconds-per-image plain=S,linearized=S")
    else:
        lines.append(f"  GPU hours (estimate from {seconds_per_image}): {hours:.1f} in all, {gpu_hours(left, seconds_per_image):.1f} still to do")
    return "\n".join(lines)

