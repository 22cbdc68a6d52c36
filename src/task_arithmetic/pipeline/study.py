"""The embedded study, the README's main command: every step of the tau-Jp paper, offline.

Each step is skipped when its output exists and is newer than its inputs, so a re-run (or a run
after a kill) only does what is missing. Every step can also be run by its own script
(src/finetune.py, src/eval_*.py, src/report.py); this module only sequences them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..data.registry import benchmark_tasks, control_task
from ..embedded.presets import Preset, get_preset
from ..evaluation.addition import evaluate_addition
from ..evaluation.disentanglement import GRID_LIMIT, evaluate_disentanglement
from ..evaluation.negation import evaluate_negation
from ..evaluation.pairs import evaluate_pairs
from ..evaluation.results import write_results
from ..evaluation.selection import symmetric_grid
from ..evaluation.session import EvalOptions, EvalSession, RunSelection
from ..evaluation.single_task import evaluate_single_task
from ..evaluation.tau_jp import evaluate_tau_jp
from ..io import metadata_path
from ..models.factory import ModelSpec
from ..models.pretrained import zeroshot_encoder
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, Layout
from ..reporting.build import build_report
from ..training.config import FinetuneConfig
from ..training.loop import run_finetune
from ..vectors.runs import RunRecipe

MODEL = "TinyCLIP"
# (mode, reg): the three fine-tuning recipes the paper compares.
TRAINING_RECIPES: tuple[tuple[str, str], ...] = (("standard", "none"), ("linear", "none"), ("linear", "tau_jp"))
# Post-hoc linearisation of the standard runs is evaluated as well (no extra training).
EVAL_RECIPES: tuple[RunRecipe, ...] = (
    RunRecipe("standard"),
    RunRecipe("posthoc"),
    RunRecipe("linear"),
    RunRecipe("linear", "tau_jp"),
)


@dataclass(frozen=True)
class StudyConfig:
    preset: str = "default"
    data_location: Path = DEFAULT_DATA_LOCATION
    checkpoint_root: Path = DEFAULT_CHECKPOINT_ROOT
    results_root: Path = DEFAULT_RESULTS_ROOT
    device: str = "auto"
    progress: bool = True


@dataclass
class StudyLog:
    """Wall time of each step, printed at the end and kept in the report folder."""

    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def run_study(cfg: StudyConfig) -> list[Path]:
    preset = get_preset(cfg.preset)
    # The self-pretrained weights live under this study's checkpoint root, like everything it makes.
    spec = ModelSpec(MODEL, preset.weight_tag, cache_dir=str(Path(cfg.checkpoint_root) / "pretrained"))
    layout = Layout(Path(cfg.checkpoint_root), Path(cfg.results_root))
    tasks = list(preset.tasks or benchmark_tasks("embedded"))
    log = StudyLog()
    total = time.perf_counter()

    _say(f"[1/4] pretrained TinyCLIP ({preset.weight_tag})")
    log.timed("pretrain", lambda: zeroshot_encoder(spec, layout, "cpu"))

    _say(f"[2/4] fine-tuning {len(tasks)} tasks x {len(TRAINING_RECIPES)} recipes")
    for mode, reg in TRAINING_RECIPES:
        for task in tasks:
            log.timed(f"finetune {mode}-{reg}", lambda: run_finetune(_finetune_config(cfg, preset, spec, task, mode, reg)))

    _say("[3/4] evaluations")
    for recipe in EVAL_RECIPES:
        log.timed(f"evaluate {recipe.results_run}", lambda: _evaluate_recipe(cfg, preset, spec, layout, recipe, tasks))

    _say("[4/4] report")
    written = log.timed("report", lambda: build_report(layout, spec.model_id))
    log.seconds["total"] = time.perf_counter() - total
    for name, seconds in log.seconds.items():
        _say(f"  {name:<32s} {seconds:7.1f} s")
    return written


def _say(text: str) -> None:
    print(text, flush=True)


def _finetune_config(cfg: StudyConfig, preset: Preset, spec: ModelSpec, task: str, mode: str, reg: str) -> FinetuneConfig:
    return FinetuneConfig(
        task=task,
        model=spec.name,
        pretrained=spec.pretrained,
        cache_dir=spec.cache_dir,
        mode=mode,
        reg=reg,
        max_steps=preset.max_steps,
        warmup=preset.warmup,
        max_train_samples=preset.max_train_samples,
        device=cfg.device,
        data_location=str(cfg.data_location),
        checkpoint_root=str(cfg.checkpoint_root),
        results_root=str(cfg.results_root),
        progress=cfg.progress,
    )


def _evaluate_recipe(cfg: StudyConfig, preset: Preset, spec: ModelSpec, layout: Layout, recipe: RunRecipe, tasks: list[str]) -> None:
    inputs = [layout.zeroshot(spec.model_id)] + [
        metadata_path(layout.finetuned(spec.model_id, task, recipe.source_run)) for task in tasks
    ]
    newest_input = max(p.stat().st_mtime for p in inputs)
    steps = _evaluation_steps(tasks, preset)
    pending = [name for name in steps if not _is_fresh(layout.results(spec.model_id, recipe.results_run, name), newest_input)]
    if not pending:
        _say(f"  {recipe.results_run}: up to date")
        return
    selection = RunSelection(spec, layout, Path(cfg.data_location), recipe, tuple(tasks))
    session = EvalSession(selection, EvalOptions(device=cfg.device, num_workers=0, max_eval_samples=preset.eval_limit))
    for name in pending:
        results, extra = steps[name](session)
        path = write_results(layout, spec.model_id, recipe.results_run, name, session.settings(**extra), results)
        _say(f"  {recipe.results_run}/{name} -> {path}")


def _is_fresh(path: Path, newest_input: float) -> bool:
    return path.is_file() and path.stat().st_mtime >= newest_input


def _evaluation_steps(tasks: list[str], preset: Preset) -> dict[str, Callable[[EvalSession], tuple[dict, dict]]]:
    control = control_task("embedded")
    points = int(round(1 / preset.alpha_step))
    alphas = tuple(round(i * preset.alpha_step, 4) for i in range(points + 1))
    grid = symmetric_grid(GRID_LIMIT, preset.disentanglement_points)
    pair = (tasks[0], tasks[1])
    datasets = tasks + ([control] if control else [])
    return {
        "single_task": lambda s: (evaluate_single_task(s), {}),
        "addition": lambda s: (evaluate_addition(s, alphas), {"alphas": list(alphas)}),
        "negation": lambda s: (evaluate_negation(s, control, alphas), {"control": control, "alphas": list(alphas)}),
        "pairs": lambda s: (evaluate_pairs(s, alphas), {"alphas": list(alphas)}),
        "tau_jp": lambda s: (evaluate_tau_jp(s, datasets, "test"), {"split": "test", "datasets": datasets}),
        "disentanglement": lambda s: (
            evaluate_disentanglement(s, [pair], grid, "test"),
            {"pairs": [pair], "alphas": list(grid), "split": "test"},
        ),
    }
