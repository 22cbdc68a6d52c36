"""The study's unit of evaluation work: one recipe's pending evaluations in one session.

Shared by the sequential study (pipeline/study.py), its worker processes (pipeline/parallel.py)
and the Slurm stage jobs, so each runs exactly the same call.
"""

from __future__ import annotations

from ..evaluation.results import write_results
from ..evaluation.session import EvalOptions, EvalSession, RunSelection
from .catalog import EVALUATIONS, Recipe
from .plan import Study, pending_evaluations


def evaluate_recipe(study: Study, recipe: Recipe, only: tuple[str, ...] | None = None) -> None:
    """Run the recipe's pending evaluations (or those of `only`); a missing run names its command."""
    pending = [n for n in pending_evaluations(study, recipe) if only is None or n in only]
    if not pending:
        print(f"  {recipe.evaluated.results_run}: up to date", flush=True)
        return
    selection = RunSelection(study.spec, study.layout, study.data_location, recipe.evaluated, study.tasks)
    options = EvalOptions(device=study.device, batch_size=study.eval_batch_size, num_workers=study.eval_workers, max_eval_samples=study.eval_limit)
    session = EvalSession(selection, options)
    for name in pending:
        results, extra = EVALUATIONS[name](list(study.tasks), study.settings)(session)
        path = write_results(study.layout, study.spec.model_id, recipe.evaluated.results_run, name, session.settings(**extra), results)
        print(f"  {recipe.evaluated.results_run}/{name} -> {path}", flush=True)
