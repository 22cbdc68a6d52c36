"""The study: fine-tune every task in every recipe, run every evaluation, write the report.

`execute` walks the study's unit graph (graph.py) in this process or in worker processes
(parallel.py); every unit whose outputs exist and are fresh is skipped, so a re-run (or a run
after a kill) only does what is missing. `run_study` is the embedded preset
(src/run_embedded.py); `execute_seeds` runs replicates of any Study (src/run_study.py).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..data.registry import benchmark_tasks, control_task
from ..embedded.presets import get_preset
from ..errors import UserError
from ..evaluation.registry import EVALUATIONS, study_param_values
from ..io import atomic_write_json, atomic_write_text
from ..models.factory import ModelSpec
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, Layout
from ..recipes import Group, recipe, recipes_in
from ..reporting.collect import collect
from ..reporting.seeds import summarize_seeds
from .definition import Study
from .graph import Unit, UnitKind, build_graph, is_done, pending_units, run_unit
from .parallel import run_units
from .stop import stop_for_signal

MODEL = "TinyCLIP"
ALL_GROUPS = tuple(Group)


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
    pretrain_seeds: "PretrainSeeds" = None  # TinyCLIP pretrained anew per replicate: see replicates()
    jobs: int = 1  # worker processes for the units (pipeline/parallel.py); 1: this process


@dataclass
class StudyLog:
    """Wall time of each step, printed at the end."""

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
    names = cfg.recipes or recipes_in(*(preset.recipe_groups or ALL_GROUPS))
    return Study(
        spec=spec,
        tasks=tuple(preset.tasks or benchmark_tasks("embedded")),
        recipes=tuple(recipe(n) for n in names),
        evaluations=tuple(cfg.evaluations or (e for e in EVALUATIONS if e not in preset.skip_evaluations)),
        layout=Layout(Path(cfg.checkpoint_root), Path(cfg.results_root)),
        data_location=Path(cfg.data_location),
        eval_params=study_param_values({"control": control_task("embedded"), **preset.eval_params}),
        device=cfg.device,
        progress=cfg.progress,
        finetune=finetune,
        eval_limit=preset.eval_limit,
    )


def run_study(cfg: StudyConfig) -> list[Path]:
    return execute_seeds(embedded_study(cfg), cfg.seeds, cfg.pretrain_seeds, cfg.jobs)


# How the replicates' TinyCLIP is pretrained: None, the study's own weights for every replicate;
# PAIRED, replicate s pretrained from seed s; a tuple of seeds, every pretraining seed crossed with
# every fine-tuning seed (the spread over both draws, README "Seeds").
PAIRED = "paired"
PretrainSeeds = tuple[int, ...] | str | None


@dataclass(frozen=True)
class Replicate:
    seed: int
    pretrain_seed: int
    study: Study

    @property
    def label(self) -> str:
        return f"seed {self.seed} (pretraining seed {self.pretrain_seed})"


def replicate(study: Study, seed: int, pretrain_seed: int | None = None) -> Replicate:
    """The study fine-tuned from `seed`, on TinyCLIP pretrained from `pretrain_seed` (None: the
    study's own weights).

    Seed 0 of the study's own weights is the single-seed study itself (same folders, so a
    multi-seed run reuses it); every other replicate lives under <root>/seeds/seed-<s>/, where
    replicates of different pretraining draws are apart by their model id (TinyCLIP-embedded-p<p>).
    """
    if seed < 0 or (pretrain_seed is not None and pretrain_seed < 0):
        raise UserError(f"--seeds and --pretrain-seeds take seeds >= 0, got {seed if seed < 0 else pretrain_seed}")
    spec = study.spec
    if pretrain_seed is not None:
        if spec.name != MODEL or spec.pretrained is None:
            raise UserError(f"--pretrain-seeds only applies to the embedded {MODEL}, which this suite pretrains itself; drop it for {spec.name}")
        from ..embedded.presets import preset_for_tag, with_pretrain_seed
        from ..embedded.weights import register_weight_tag

        tag = with_pretrain_seed(preset_for_tag(spec.pretrained), pretrain_seed).weight_tag
        register_weight_tag(tag)
        spec = dataclasses.replace(spec, pretrained=tag)
    if seed == 0 and spec == study.spec:
        return Replicate(0, pretrain_seed or 0, study)
    folder = Path("seeds") / f"seed-{seed}"
    layout = Layout(Path(study.layout.checkpoint_root) / folder, Path(study.layout.results_root) / folder)
    seeded = dataclasses.replace(study, spec=spec, layout=layout, finetune={**study.finetune, "seed": seed})
    return Replicate(seed, pretrain_seed or 0, seeded)


def replicates(study: Study, seeds: tuple[int, ...], pretrain_seeds: PretrainSeeds = None) -> list[Replicate]:
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds needs distinct seeds (e.g. 0,1,2), got {','.join(map(str, seeds))}")
    if pretrain_seeds is None:
        return [replicate(study, s) for s in seeds]
    if pretrain_seeds == PAIRED:
        return [replicate(study, s, s) for s in seeds]
    if isinstance(pretrain_seeds, str) or not pretrain_seeds or len(set(pretrain_seeds)) != len(pretrain_seeds):
        raise UserError(f"--pretrain-seeds takes distinct seeds (e.g. 0,1,2) or nothing (each replicate pretrained from its own seed), got {pretrain_seeds}")
    return [replicate(study, s, p) for p in pretrain_seeds for s in seeds]


def execute_seeds(study: Study, seeds: tuple[int, ...] = (0,), pretrain_seeds: PretrainSeeds = None, jobs: int = 1) -> list[Path]:
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
    summary = summarize_seeds([r.label for r in replicates], runs, [r.pretrain_seed for r in replicates])
    first = replicates[0].study
    folder = first.layout.report_dir(first.spec.model_id)
    md, js = folder / "seeds.md", folder / "seeds.json"
    atomic_write_text(md, summary.markdown())
    atomic_write_json(js, summary.to_json())
    _say(f"seeds: {md}")
    return [md, js]


def execute(study: Study, jobs: int = 1) -> list[Path]:
    """The whole study: every unit of its graph not yet done, in this process (jobs == 1) or in
    `jobs` worker processes (the log's per-step times are then summed over units side by side)."""
    log = StudyLog()
    total = time.perf_counter()
    units = build_graph(study)
    todo = {u.id for u in pending_units(study, units)}  # for the summary: what this call had to do
    fine_tunings = sum(u.kind is UnitKind.FINETUNE for u in units)
    _say(f"study of {study.spec.model_id}: {len(study.tasks)} tasks, {fine_tunings} fine-tuning runs, "
         f"{len(study.recipes)} recipes x {len(study.evaluations)} evaluations")
    if jobs > 1:
        log.timed("units (wall)", lambda: run_units(study, units, jobs, log.add))
    else:
        for unit in units:
            if is_done(study, unit):
                _say(f"[{unit.id}] up to date")
                continue
            _say(f"[{unit.id}]")
            if log.timed(unit.group, lambda: run_unit(study, unit)) == "preempted":
                stop_for_signal()  # a stop signal: the run saved its state; the study stops too
    report = study.layout.report_dir(study.spec.model_id)
    written = sorted(p for p in report.iterdir() if p.is_file()) if report.is_dir() else []
    log.seconds["total"] = time.perf_counter() - total
    for name, seconds in log.seconds.items():
        _say(f"  {name:<40s} {seconds:7.1f} s")
    for line in summary(study, units, todo, log.seconds["total"]):
        _say(line)
    return written


def summary(study: Study, units: list[Unit], todo: set[str], seconds: float) -> list[str]:
    """The end of a study: what it did (and found done), the report, each run's headline numbers."""
    from ..training.tracking import duration

    def count(kind: UnitKind) -> str:
        of_kind = [u for u in units if u.kind is kind]
        ran = sum(u.id in todo for u in of_kind)
        return f"{len(of_kind)} ({ran} now, {len(of_kind) - ran} already done)"

    report = study.layout.report_dir(study.spec.model_id) / "report.md"
    lines = [f"study of {study.spec.model_id} finished in {duration(seconds)}: fine-tuning runs {count(UnitKind.FINETUNE)}, "
             f"recipes evaluated {count(UnitKind.EVALUATE)}; report: {report}"]
    try:
        runs = collect(study.layout.results_root, study.spec.model_id)
    except UserError:  # no results (a study of fine-tuning only)
        return lines
    for name, run in runs.items():
        shown = next(((e, r) for e in ("addition", "single_task") if (r := run.results.get(e)) is not None), None)
        if shown is not None:
            lines.append(f"  {name}: {shown[0]} {EVALUATIONS[shown[0]].headline(shown[1])}")
    return lines


def _say(text: str) -> None:
    print(text, flush=True)
