"""What a study will do, before it does it: every fine-tuning run with its steps and examples,
every evaluation, which are done, and the cost (image passes, and GPU hours from a calibration).

Nothing here reads weights or data, so a user can plan before downloading anything. Training-set
sizes come from NOMINAL_TRAIN_SIZES (the standard splits) or the embedded catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.registry import get_task, smallest_suite
from ..data.splits import VAL_MAX
from ..io import metadata_path
from ..models.factory import ModelSpec
from ..paths import Layout
from ..recipes import MODES, REGULARIZERS
from ..recipes.names import default_mode
from ..training.config import FinetuneConfig, resolve_config
from .catalog import TRAINING_OPTIONS, EvalSettings, Recipe

ALL_OPTION_NAMES = frozenset(n for p in (*MODES.values(), *REGULARIZERS.values()) for n in p.option_names())

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
class Study:
    spec: ModelSpec
    tasks: tuple[str, ...]
    recipes: tuple[Recipe, ...]
    evaluations: tuple[str, ...]
    layout: Layout
    data_location: Path
    settings: EvalSettings
    device: str = "auto"
    progress: bool = True
    finetune: dict[str, Any] = field(default_factory=dict)  # FinetuneConfig fields and recipe options passed through
    eval_limit: int | None = None
    eval_batch_size: int = 128
    eval_workers: int = 0
    precision: str = "auto"  # fine-tuning and evaluation alike (task_arithmetic/precision.py)
    decode_cache: bool = True  # images decoded once for every run and evaluation (data/decoded.py)

    @property
    def trainings(self) -> tuple[tuple[str, str], ...]:
        """The (mode, reg) fine-tuning recipes the study makes, each once."""
        return tuple(dict.fromkeys(r.training for r in self.recipes if r.training is not None))

    def finetune_settings(self, reg: str, mode: str | None = None) -> dict[str, Any]:
        """The passed-through fine-tuning flags for runs of (mode, reg): the common ones, the recipe
        options its plug-ins own (the other runs refuse them), and what the study sets for it."""
        mode = mode or default_mode(reg)
        owned = set(MODES[mode].option_names()) | set(REGULARIZERS[reg].option_names())
        out = {k: v for k, v in self.finetune.items() if k not in ALL_OPTION_NAMES or k in owned}
        out.update(TRAINING_OPTIONS.get((mode, reg), {}))
        return out

    def finetune_config(self, task: str, mode: str, reg: str) -> FinetuneConfig:
        # A study spanning a larger suite than the task's own (a real8 task in a real20 study)
        # draws tau-Jp inputs from that suite's other tasks and control, not from the task's suite.
        suite = smallest_suite(self.tasks)
        wider = reg == "tau_jp" and suite is not None and suite != get_task(task).benchmark and "penalty_tasks" not in self.finetune
        settings = self.finetune_settings(reg, mode)
        common = {k: v for k, v in settings.items() if k not in ALL_OPTION_NAMES}
        options = {k: v for k, v in settings.items() if k in ALL_OPTION_NAMES}
        if wider:
            options["penalty_tasks"] = (suite,)
        return FinetuneConfig(
            task=task, model=self.spec.name, pretrained=self.spec.pretrained, cache_dir=self.spec.cache_dir,
            mode=mode, reg=reg, options=options, device=self.device, data_location=str(self.data_location),
            checkpoint_root=str(self.layout.checkpoint_root), results_root=str(self.layout.results_root),
            progress=self.progress, precision=self.precision, decode_cache="on" if self.decode_cache else "off", **common,
        )


@dataclass(frozen=True)
class PlannedRun:
    task: str
    run: str
    steps: int | None  # None: the training-set size is not known before the data is there
    examples: int | None  # training images drawn (steps x batch)
    penalty_examples: int  # tau-Jp penalty inputs drawn
    kind: str  # a PASS_KINDS entry
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


def planned_run(study: Study, task: str, mode: str, reg: str) -> PlannedRun:
    cfg = resolve_config(study.finetune_config(task, mode, reg))
    n = train_size(cfg.task)
    if n is not None:
        n -= min(math.floor(0.1 * n), VAL_MAX)  # the Val hold-out (its size up to rounding)
        if cfg.max_train_samples is not None:
            n = min(n, cfg.max_train_samples)
    steps = cfg.max_steps if cfg.max_steps is not None else (None if n is None else cfg.epochs * math.ceil(n / cfg.batch_size))
    examples = None if steps is None else steps * cfg.batch_size
    per_step = getattr(cfg.reg_settings, "penalty_batch", 0) * len(cfg.reg_plugin.data_tasks(cfg.reg_settings))
    penalty = 0 if steps is None else steps * per_step
    weights = study.layout.finetuned(study.spec.model_id, cfg.task, cfg.run)
    return PlannedRun(
        cfg.task, cfg.run, steps, examples, penalty, "linearized" if cfg.mode_plugin.linearized or per_step else "plain",
        metadata_path(weights).is_file(), study.layout.train_state(study.spec.model_id, cfg.task, cfg.run).exists(),
    )


def evaluation_inputs(study: Study, recipe: Recipe) -> list[Path]:
    return [study.layout.zeroshot(study.spec.model_id)] + [
        metadata_path(study.layout.finetuned(study.spec.model_id, task, recipe.evaluated.source_run)) for task in study.tasks
    ]


def pending_evaluations(study: Study, recipe: Recipe) -> list[str]:
    """The evaluations of `recipe` whose results are missing or older than the runs they read."""
    inputs = evaluation_inputs(study, recipe)
    if not all(p.is_file() for p in inputs):
        return list(study.evaluations)
    newest = max(p.stat().st_mtime for p in inputs)
    out = study.layout.results
    return [n for n in study.evaluations if not _fresh(out(study.spec.model_id, recipe.evaluated.results_run, n), newest)]


def _fresh(path: Path, newest_input: float) -> bool:
    return path.is_file() and path.stat().st_mtime >= newest_input


@dataclass(frozen=True)
class Plan:
    runs: list[PlannedRun]
    evaluations: list[PlannedEvaluation]


def make_plan(study: Study) -> Plan:
    runs = [planned_run(study, task, mode, reg) for mode, reg in study.trainings for task in study.tasks]
    evaluations = []
    for recipe in study.recipes:
        pending = set(pending_evaluations(study, recipe))
        evaluations += [PlannedEvaluation(recipe.evaluated.results_run, n, n not in pending) for n in study.evaluations]
    return Plan(runs, evaluations)


def image_passes(plan: Plan, remaining_only: bool = False) -> dict[str, int | None]:
    """Training images through each kind of pass (penalty inputs count as linearised passes);
    None when some run's size is unknown. Evaluations are not counted."""
    totals: dict[str, int | None] = {kind: 0 for kind in PASS_KINDS}
    for run in plan.runs:
        if remaining_only and run.done:
            continue
        if run.examples is None:
            totals[run.kind] = None
            continue
        if totals[run.kind] is not None:
            totals[run.kind] += run.examples  # type: ignore[operator]
        if run.penalty_examples and totals["linearized"] is not None:
            totals["linearized"] += run.penalty_examples  # type: ignore[operator]
    return totals


def gpu_hours(passes: dict[str, int | None], seconds_per_image: dict[str, float] | None) -> float | None:
    if not seconds_per_image or any(v is None for v in passes.values()) or set(passes) - set(seconds_per_image):
        return None
    return sum(passes[k] * seconds_per_image[k] for k in passes) / 3600  # type: ignore[operator]


def format_plan(study: Study, plan: Plan, seconds_per_image: dict[str, float] | None) -> str:
    lines = [f"study of {study.spec.model_id} on {', '.join(study.tasks)}", f"fine-tuning runs ({len(plan.runs)}):"]
    for run in plan.runs:
        state = "done" if run.done else ("partial, resumes" if run.partial else "to do")
        size = "size unknown until the data is there" if run.steps is None else f"{run.steps} steps, {run.examples} examples"
        penalty = f" + {run.penalty_examples} penalty inputs" if run.penalty_examples else ""
        lines.append(f"  {run.task:<12s} {run.run:<16s} {size}{penalty}  [{state}]")
    lines.append(f"evaluations ({len(plan.evaluations)}):")
    for ev in plan.evaluations:
        lines.append(f"  {ev.recipe:<16s} {ev.name:<16s} [{'done' if ev.done else 'to do'}]")
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

