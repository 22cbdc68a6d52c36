"""The study: fine-tune every task in every recipe, run every evaluation, write the report.

Each step is skipped when its output exists and is newer than its inputs, so a re-run (or a run
after a kill) only does what is missing. Every step can also be run by its own script
(src/finetune.py, src/eval_*.py, src/report.py); this module only sequences them.
`run_study` is the embedded preset (src/run_embedded.py); `execute` runs any Study
(src/run_study.py).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..data.registry import benchmark_tasks, control_task
from ..embedded.presets import get_preset, preset_for_tag
from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text
from ..models.factory import ModelSpec
from ..models.pretrained import task_head, zeroshot_encoder
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, Layout
from ..reporting.build import build_report
from ..reporting.collect import collect
from ..reporting.seeds import summarize_seeds
from ..training.loop import run_finetune
from .catalog import EMBEDDED_RECIPES, EVALUATIONS, EvalSettings, get_recipe
from .parallel import run_units
from .plan import Study
from .units import evaluate_recipe, stop_for_signal

MODEL = "TinyCLIP"
# Every recipe the embedded study knows (the smoke preset runs them all; the default preset the
# paper's four): what is evaluated, and the fine-tuning it needs.
EVAL_RECIPES = tuple(get_recipe(name).evaluated for name in EMBEDDED_RECIPES)
TRAINING_RECIPES: tuple[tuple[str, str], ...] = tuple(dict.fromkeys(get_recipe(n).training for n in EMBEDDED_RECIPES))  # type: ignore[misc]


@dataclass(frozen=True)
class StudyConfig:
    """The embedded study (src/run_embedded.py)."""

    preset: str = "default"
    data_location: Path = DEFAULT_DATA_LOCATION
    checkpoint_root: Path = DEFAULT_CHECKPOINT_ROOT
    results_root: Path = DEFAULT_RESULTS_ROOT
    device: str = "auto"
    progress: bool = True
    recipes: tuple[str, ...] | None = None  # --recipes; None: the preset's
    evaluations: tuple[str, ...] | None = None  # --evaluations; None: the preset's
    seeds: tuple[int, ...] = (0,)  # fine-tuning seeds, one replicate of the whole study each
    pretrain_seeds: bool = False  # replicate i also pretrains TinyCLIP from seed seeds[i]
    jobs: int = 1  # worker processes for the runs and evaluations (pipeline/parallel.py); 1: this process
    precision: str = "auto"  # --precision of every run and evaluation (task_arithmetic/precision.py)


@dataclass
class StudyLog:
    """Wall time of each step, printed at the end and kept in the report folder."""

    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def embedded_study(cfg: StudyConfig) -> Study:
    preset = get_preset(cfg.preset)
    # The self-pretrained weights live under this study's checkpoint root, like everything it makes.
    spec = ModelSpec(MODEL, preset.weight_tag, cache_dir=str(Path(cfg.checkpoint_root) / "pretrained"))
    finetune = {k: v for k, v in (("max_steps", preset.max_steps), ("warmup", preset.warmup), ("max_train_samples", preset.max_train_samples)) if v is not None}
    return Study(
        spec=spec,
        tasks=tuple(preset.tasks or benchmark_tasks("embedded")),
        recipes=tuple(get_recipe(n) for n in cfg.recipes or preset.recipes or EMBEDDED_RECIPES),
        evaluations=tuple(cfg.evaluations or preset.evaluations or EVALUATIONS),
        layout=Layout(Path(cfg.checkpoint_root), Path(cfg.results_root)),
        data_location=Path(cfg.data_location),
        settings=EvalSettings(control_task("embedded"), preset.alpha_step, preset.disentanglement_points, preset.adamerging_steps),
        device=cfg.device,
        progress=cfg.progress,
        finetune=finetune,
        eval_limit=preset.eval_limit,
        precision=cfg.precision,
    )


def run_study(cfg: StudyConfig) -> list[Path]:
    return execute_seeds(embedded_study(cfg), cfg.seeds, cfg.pretrain_seeds, cfg.jobs)


@dataclass(frozen=True)
class Replicate:
    seed: int
    pretrain_seed: int
    study: Study

    @property
    def label(self) -> str:
        return f"seed {self.seed} (pretraining seed {self.pretrain_seed})"


def replicate(study: Study, seed: int, pretrain_seed: bool = False) -> Replicate:
    """The study fine-tuned from `seed` (and, with pretrain_seed, TinyCLIP pretrained from it).

    Seed 0 of the study's own weights is the single-seed study itself (same folders, so a
    multi-seed run reuses it); every other replicate lives under <root>/seeds/seed-<s>/.
    """
    if seed < 0:
        raise UserError(f"--seeds takes seeds >= 0, got {seed}")
    spec = study.spec
    if pretrain_seed:
        if spec.name != MODEL or spec.pretrained is None:
            raise UserError(f"--pretrain-seeds only applies to the embedded {MODEL}, which this suite pretrains itself; drop it for {spec.name}")
        from ..embedded.presets import preset_for_tag, with_pretrain_seed
        from ..embedded.weights import register_weight_tag

        tag = with_pretrain_seed(preset_for_tag(spec.pretrained), seed).weight_tag
        register_weight_tag(tag)
        spec = dataclasses.replace(spec, pretrained=tag)
    if seed == 0 and spec == study.spec:
        return Replicate(0, 0, study)
    folder = Path("seeds") / f"seed-{seed}"
    layout = Layout(Path(study.layout.checkpoint_root) / folder, Path(study.layout.results_root) / folder)
    seeded = dataclasses.replace(study, spec=spec, layout=layout, finetune={**study.finetune, "seed": seed})
    return Replicate(seed, seed if pretrain_seed else 0, seeded)


def replicates(study: Study, seeds: tuple[int, ...], pretrain_seeds: bool = False) -> list[Replicate]:
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds needs distinct seeds (e.g. 0,1,2), got {','.join(map(str, seeds))}")
    return [replicate(study, s, pretrain_seeds) for s in seeds]


def execute_seeds(study: Study, seeds: tuple[int, ...] = (0,), pretrain_seeds: bool = False, jobs: int = 1) -> list[Path]:
    """One replicate per seed, then seeds.md/seeds.json (mean, sd, 95 % interval, claims as k of n)."""
    replicates_ = replicates(study, seeds, pretrain_seeds)
    if len(replicates_) == 1:
        return execute(replicates_[0].study, jobs)
    written: list[Path] = []
    for r in replicates_:
        _say(f"=== {r.label} ===")
        written += execute(r.study, jobs)
    return written + _seeds_report(replicates_)


def _seeds_report(replicates: list[Replicate]) -> list[Path]:
    """seeds.md and seeds.json beside the first replicate's report."""
    runs = [collect(r.study.layout.results_root, r.study.spec.model_id) for r in replicates]
    summary = summarize_seeds([r.label for r in replicates], runs)
    first = replicates[0].study
    folder = first.layout.report_dir(first.spec.model_id)
    md, js = folder / "seeds.md", folder / "seeds.json"
    atomic_write_text(md, summary.markdown())
    atomic_write_json(js, summary.to_json())
    _say(f"seeds: {md}")
    return [md, js]


def execute(study: Study, jobs: int = 1) -> list[Path]:
    """The whole study; with jobs > 1 the runs and evaluations go to that many worker processes
    (the log's per-step times are then summed over units that ran side by side)."""
    log = StudyLog()
    total = time.perf_counter()
    spec = study.spec
    _say(f"[1/4] pretrained {spec.model_id}")
    log.timed("pretrain", lambda: prepare(study))

    if jobs > 1:
        _say(f"[2-3/4] fine-tuning {len(study.tasks)} tasks x {len(study.trainings)} recipes, and evaluations, side by side")
        log.timed("runs and evaluations (wall)", lambda: run_units(study, jobs, log.add, _weight_tags(spec)))
    else:
        _say(f"[2/4] fine-tuning {len(study.tasks)} tasks x {len(study.trainings)} recipes")
        for mode, reg in study.trainings:
            for task in study.tasks:
                result = log.timed(f"finetune {mode}-{reg}", lambda: run_finetune(study.finetune_config(task, mode, reg)))
                if result.status == "preempted":  # a stop signal: the run saved its state; the study stops too
                    stop_for_signal()

        _say("[3/4] evaluations")
        for recipe in study.recipes:
            log.timed(f"evaluate {recipe.evaluated.results_run}", lambda: evaluate_recipe(study, recipe))

    _say("[4/4] report")
    written = log.timed("report", lambda: build_report(study.layout, spec.model_id))
    log.seconds["total"] = time.perf_counter() - total
    for name, seconds in log.seconds.items():
        _say(f"  {name:<32s} {seconds:7.1f} s")
    return written


def _weight_tags(spec: ModelSpec) -> tuple[str, ...]:
    """The embedded weight tag a worker process must register (a pretraining seed's is registered
    only when the replicate is made, see `replicate`)."""
    if spec.name != MODEL or spec.pretrained is None:
        return ()
    try:
        preset_for_tag(spec.pretrained)
    except UserError:  # a file or another source: the worker's plug-ins resolve it as here
        return ()
    return (spec.pretrained,)


def prepare(study: Study) -> None:
    """theta_0 and the heads of every task and the control, built once before the runs that read
    them (on Slurm, before the fine-tuning arrays start side by side)."""
    zeroshot_encoder(study.spec, study.layout, "cpu", study.progress)
    for task in dict.fromkeys((*study.tasks, *((study.settings.control,) if study.settings.control else ()))):
        task_head(study.spec, task, study.layout, study.data_location, "cpu")


STAGES = ("prepare", "evaluate:<recipe>", "report")


def run_stage(study: Study, stage: str) -> list[Path]:
    """One step of the study (a Slurm job of src/run_study.py --launcher slurm)."""
    kind, _, recipe_name = stage.partition(":")
    if kind == "prepare" and not recipe_name:
        prepare(study)
        return [study.layout.zeroshot(study.spec.model_id)]
    if kind == "evaluate":
        recipe = next((r for r in study.recipes if r.name == recipe_name), None)
        if recipe is None:
            raise UserError(f"--stage {stage}: the study has no recipe '{recipe_name}'; valid: {', '.join(r.name for r in study.recipes)}")
        evaluate_recipe(study, recipe)
        return []
    if kind == "report" and not recipe_name:
        return build_report(study.layout, study.spec.model_id)
    raise UserError(f"unknown --stage '{stage}'; valid: {', '.join(STAGES)}")


def _say(text: str) -> None:
    print(text, flush=True)
