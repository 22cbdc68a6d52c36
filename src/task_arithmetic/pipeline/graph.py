"""The study as one graph of units, built once; the executors (in this process, worker processes,
Slurm jobs) only walk it.

    prepare (theta_0, the heads) -> finetune <task> <run> (after the runs it reads)
        -> evaluate <recipe> (after its runs) -> report (after every evaluation)

Each unit knows when it is done (its outputs exist and are fresh), so a re-run, a resumed study or
a second submission only does what is missing. A unit crosses a process boundary as JSON
(`unit_payload` / `unit_from_payload`): the serialised study plus the unit's id.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..evaluation.registry import EVALUATIONS
from ..evaluation.results import Freshness, freshness, log_to_wandb, results_key, results_lock, write_results
from ..evaluation.session import EvalOptions, EvalSession, RunSelection
from ..io import metadata_path
from ..models.pretrained import task_head, zeroshot_encoder
from ..precision import resolve_precision
from ..recipes import Recipe, RunId
from ..reporting.build import build_report
from ..stop_signals import StopRequested
from ..training.config import resolve_config
from ..training.loop import run_finetune
from ..wandb_logging import WandbSettings
from .definition import Study


class UnitKind(enum.Enum):
    PREPARE = "prepare"
    FINETUNE = "finetune"
    EVALUATE = "evaluate"
    REPORT = "report"


@dataclass(frozen=True)
class Unit:
    id: str  # "prepare", "finetune/<task>/<run>", "evaluate/<recipe>", "report"
    kind: UnitKind
    after: tuple[str, ...] = ()  # ids of the units that must be done first
    task: str | None = None  # finetune
    run: RunId | None = None  # finetune
    recipe: str | None = None  # evaluate: the study's recipe name

    @property
    def group(self) -> str:
        """The study log's line this unit's time adds to."""
        if self.kind is UnitKind.FINETUNE:
            return f"finetune {self.run}"
        if self.kind is UnitKind.EVALUATE:
            return f"evaluate {self.recipe}"
        return self.kind.value


def finetune_id(task: str, run: RunId) -> str:
    return f"finetune/{task}/{run.name}"


def build_graph(study: Study) -> list[Unit]:
    """Every unit of the study, each after the units it reads (a topological order)."""
    units = [Unit("prepare", UnitKind.PREPARE)]
    weights_unit: dict[Path, str] = {}
    for run in study.trainings():
        for task in study.tasks:
            plan = resolve_config(study.finetune_config(task, run), check_files=False)
            reads = [study.layout.finetuned(study.spec.model_id, task, r.name) for r in plan.references()]
            if plan.init_from is not None:
                reads.append(Path(plan.init_from))
            after = ("prepare", *dict.fromkeys(weights_unit[p] for p in reads if p in weights_unit))
            unit = Unit(finetune_id(task, run), UnitKind.FINETUNE, after, task=task, run=run)
            weights_unit[study.layout.finetuned(study.spec.model_id, task, run.name)] = unit.id
            units.append(unit)
    trained = {u.id for u in units}
    evaluations = []
    for recipe in study.recipes:
        runs = tuple(finetune_id(t, recipe.run) for t in study.tasks if finetune_id(t, recipe.run) in trained)
        evaluations.append(Unit(f"evaluate/{recipe.name}", UnitKind.EVALUATE, runs or ("prepare",), recipe=recipe.name))
    units += evaluations
    units.append(Unit("report", UnitKind.REPORT, tuple(u.id for u in evaluations) or ("prepare",)))
    return units


# ----------------------------------------------------------------------------------------------
# when a unit is done


def evaluation_inputs(study: Study, recipe: Recipe) -> list[Path]:
    return [study.layout.zeroshot(study.spec.model_id)] + [
        metadata_path(study.layout.finetuned(study.spec.model_id, task, recipe.run.name)) for task in study.tasks
    ]


def evaluation_weights(study: Study, recipe: Recipe) -> list[Path]:
    """The weights the recipe's evaluations read: theta_0 and each task's run."""
    return [study.layout.zeroshot(study.spec.model_id)] + [study.layout.finetuned(study.spec.model_id, t, recipe.run.name) for t in study.tasks]


def evaluation_states(study: Study, recipe: Recipe) -> dict[str, Freshness]:
    """Each of the recipe's evaluations: fresh, missing, or not what the study would write now
    (made from other weights, another schema, or other settings: evaluation/results.py's key)."""
    if not all(p.is_file() for p in evaluation_inputs(study, recipe)):
        return {n: Freshness("missing", "the runs it reads are not all finished") for n in study.evaluations}
    weights, mid = evaluation_weights(study, recipe), study.spec.model_id
    return {
        name: freshness(study.layout.results(mid, recipe.evaluated.name, name), EVALUATIONS[name], study_key(study, name, weights))
        for name in study.evaluations
    }


def study_key(study: Study, evaluation: str, weights: list[Path]) -> Any:
    spec = EVALUATIONS[evaluation]
    precision = resolve_precision(study.precision, study.device).value  # "auto" as this process resolves it
    return results_key(spec, spec.resolved(study.params(evaluation), study.tasks), study.tasks, study.eval_limit, weights, precision)


def pending_evaluations(study: Study, recipe: Recipe) -> list[str]:
    return [name for name, state in evaluation_states(study, recipe).items() if not state.fresh]


def _report_fresh(study: Study) -> bool:
    report = study.layout.report_dir(study.spec.model_id) / "report.md"
    if not report.is_file():
        return False
    results = Path(study.layout.results_root) / study.spec.model_id
    newest = max((p.stat().st_mtime for p in results.glob("*/*.json") if p.parent.name != "report"), default=0.0)
    return report.stat().st_mtime >= newest


def _heads(study: Study) -> list[str]:
    return list(dict.fromkeys((*study.tasks, *((study.control,) if study.control else ()))))


def is_done(study: Study, unit: Unit) -> bool:
    mid = study.spec.model_id
    if unit.kind is UnitKind.PREPARE:
        return study.layout.zeroshot(mid).is_file() and all(study.layout.head(mid, t).is_file() for t in _heads(study))
    if unit.kind is UnitKind.FINETUNE:
        assert unit.task is not None and unit.run is not None
        return metadata_path(study.layout.finetuned(mid, unit.task, unit.run.name)).is_file()
    if unit.kind is UnitKind.EVALUATE:
        assert unit.recipe is not None
        return not pending_evaluations(study, study.recipe(unit.recipe))
    return _report_fresh(study)


def pending_units(study: Study, units: list[Unit]) -> list[Unit]:
    """The units to run, decided before any runs (the worker pool, Slurm): those not done, and
    every unit after one of them (a fresh report is stale once an evaluation it reads reruns)."""
    pending: set[str] = set()
    for unit in units:  # a topological order: dependencies come first
        if any(d in pending for d in unit.after) or not is_done(study, unit):
            pending.add(unit.id)
    return [u for u in units if u.id in pending]


# ----------------------------------------------------------------------------------------------
# running one unit


def prepare(study: Study) -> None:
    """theta_0 and the heads of every task and the control, built once before the runs that read
    them (on Slurm, before the fine-tuning arrays start side by side)."""
    zeroshot_encoder(study.spec, study.layout, "cpu", study.progress)
    for task in _heads(study):
        task_head(study.spec, task, study.layout, study.data_location, "cpu")


def evaluate_recipe(study: Study, recipe: Recipe) -> None:
    """Run the recipe's pending (missing or stale) evaluations in one session, saying why a stale
    one is recomputed; a missing run names the command that makes it."""
    states = evaluation_states(study, recipe)
    name = recipe.evaluated.name
    pending = [n for n, state in states.items() if not state.fresh]
    if not pending:
        print(f"  {name}: up to date", flush=True)
        return
    selection = RunSelection(study.spec, study.layout, study.data_location, recipe.evaluated, study.tasks)
    options = EvalOptions(device=study.device, batch_size=study.eval_batch_size, num_workers=study.eval_workers, max_eval_samples=study.eval_limit,
                          precision=study.precision, decode_cache=study.decode_cache)
    session = EvalSession(selection, options)
    weights = [session.theta0_path, *session.checkpoints.values()]
    wandb = WandbSettings(study.finetune.get("wandb") or "off", study.finetune.get("wandb_project") or None, study.finetune.get("wandb_entity") or None)  # --wandb of the study
    for evaluation in pending:
        if states[evaluation].status in ("stale", "other_settings"):  # a re-run with other settings, or runs trained again
            print(f"  {name}/{evaluation}: stale results ({states[evaluation].detail}); recomputing", flush=True)
        spec = EVALUATIONS[evaluation]
        params = spec.resolved(study.params(evaluation), study.tasks)
        key = results_key(spec, params, study.tasks, study.eval_limit, weights, session.precision.value)
        with results_lock(study.layout.results(study.spec.model_id, name, evaluation)):
            with session.autocast():
                result = spec.run(session, params)
            path = write_results(study.layout, study.spec.model_id, name, spec, params, session.settings(), result, key)
        print(f"  {name}/{evaluation} -> {path}", flush=True)
        log_to_wandb(wandb, spec, study.spec.model_id, name, result, study.tasks, path)


def run_unit(study: Study, unit: Unit) -> str:
    """Do the unit's work: "finished", or "preempted" when a stop signal saved a run's state (or
    stopped work that keeps none, such as pretraining theta_0's weights)."""
    try:
        return _run_unit(study, unit)
    except StopRequested as err:
        print(f"  [{unit.id}] {err}", flush=True)
        return "preempted"


def _run_unit(study: Study, unit: Unit) -> str:
    if unit.kind is UnitKind.PREPARE:
        prepare(study)
    elif unit.kind is UnitKind.FINETUNE:
        assert unit.task is not None and unit.run is not None
        return run_finetune(study.finetune_config(unit.task, unit.run)).status
    elif unit.kind is UnitKind.EVALUATE:
        assert unit.recipe is not None
        evaluate_recipe(study, study.recipe(unit.recipe))
    else:
        build_report(study.layout, study.spec.model_id)
    return "finished"


# ----------------------------------------------------------------------------------------------
# across processes


def unit_payload(study: Study, unit: Unit) -> dict[str, Any]:
    return {"study": study.to_json(), "unit": unit.id}


def unit_from_payload(payload: Mapping[str, Any]) -> tuple[Study, Unit]:
    study = Study.from_json(payload["study"])
    unit = next((u for u in build_graph(study) if u.id == payload["unit"]), None)
    if unit is None:
        raise ValueError(f"the study has no unit {payload['unit']}")
    return study, unit


def read_unit_file(path: Path) -> tuple[Study, Unit]:
    return unit_from_payload(json.loads(Path(path).read_text()))
