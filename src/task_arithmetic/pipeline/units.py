"""What the sequential study (pipeline/study.py), its worker processes (pipeline/parallel.py) and
the Slurm stage jobs share, so each runs exactly the same call: one recipe's pending evaluations
in one session, and how the study ends when a stop signal reached a run.
"""

from __future__ import annotations

from typing import NoReturn

from ..evaluation.results import write_results
from ..evaluation.session import EvalOptions, EvalSession, RunSelection
from ..training.preemption import EXIT_PREEMPTED
from .catalog import EVALUATIONS, Recipe
from .plan import Study, pending_evaluations


def evaluate_recipe(study: Study, recipe: Recipe, only: tuple[str, ...] | None = None) -> None:
    """Run the recipe's pending evaluations (or those of `only`); a missing run names its command."""
    pending = [n for n in pending_evaluations(study, recipe) if only is None or n in only]
    if not pending:
        print(f"  {recipe.evaluated.results_run}: up to date", flush=True)
        return
    selection = RunSelection(study.spec, study.layout, study.data_location, recipe.evaluated, study.tasks)
    options = EvalOptions(device=study.device, batch_size=study.eval_batch_size, num_workers=study.eval_workers, max_eval_samples=study.eval_limit,
                          precision=study.precision, decode_cache=study.decode_cache)
    session = EvalSession(selection, options)
    for name in pending:
        with session.autocast():
            results, extra = EVALUATIONS[name](list(study.tasks), study.settings)(session)
        path = write_results(study.layout, study.spec.model_id, recipe.evaluated.results_run, name, session.settings(**extra), results)
        print(f"  {recipe.evaluated.results_run}/{name} -> {path}", flush=True)


def stop_for_signal(detail: str = "") -> NoReturn:
    """A stop signal reached the study: a run under way saved its state and finished steps stay;
    exit EXIT_PREEMPTED, so neither a scheduler nor a user takes the study for finished."""
    print(f"stopped by a signal: finished steps are kept, a stopped run saved its state; run the same command again to resume{detail}", flush=True)
    raise SystemExit(EXIT_PREEMPTED)
