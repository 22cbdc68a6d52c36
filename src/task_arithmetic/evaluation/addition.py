"""Task addition: theta_0 + alpha * sum_t tau_t, alpha chosen on the Val parts.

Normalised accuracy of task d = acc(edited, d) / acc(single-task fine-tuned of the same mode, d);
alpha maximises the average normalised Val accuracy (ties keep the smaller alpha); the test set
is evaluated once at that alpha, and once at alpha = 1 ("one-shot", no search).
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from ..reporting.table import RunResults, Table, describe, pct_cell, task_columns, with_results
from .edits import Edit
from .selection import ALPHA_GRID, alpha_grid, best_index, mean
from .session import EvalSession
from .spec import Evaluation, add_alpha_step, pct

ONE_SHOT_ALPHA = 1.0


def summarize(per_task: dict[str, float], finetuned: dict[str, float]) -> dict[str, Any]:
    normalized = {t: (acc / finetuned[t] if finetuned[t] > 0 else None) for t, acc in per_task.items()}
    return {
        "per_task": per_task,
        "per_task_normalized": normalized,
        "avg_accuracy": mean(list(per_task.values())),
        "avg_normalized": mean(list(normalized.values())),
    }


def accuracies(session: EvalSession, edit: Edit, tasks: Sequence[str], split: str) -> dict[str, float]:
    return {t: session.accuracy(edit, t, split) for t in tasks}


def sweep(session: EvalSession, tasks: Sequence[str], alphas: Sequence[float] = ALPHA_GRID) -> dict[str, Any]:
    """The addition protocol for any subset of the session's tasks (all of them, or a pair)."""
    tasks = list(tasks)
    session.prefetch(
        [(Edit.scaled([t], 1.0), t, split) for t in tasks for split in ("val", "test")]
        + [(Edit.scaled(tasks, alpha), t, "val") for alpha in alphas for t in tasks]
    )
    finetuned = {split: {t: session.finetuned_accuracy(t, split) for t in tasks} for split in ("val", "test")}
    curve = []
    for alpha in alphas:
        per_task = accuracies(session, Edit.scaled(tasks, alpha), tasks, "val")
        curve.append({"alpha": alpha, **summarize(per_task, finetuned["val"])})
    selected_on = "avg_normalized"
    chosen = best_index(list(alphas), [point[selected_on] for point in curve], maximize=True)
    if chosen is None:  # every task's fine-tuned Val accuracy is 0: normalised accuracy is undefined
        selected_on = "avg_accuracy"
        chosen = best_index(list(alphas), [point[selected_on] for point in curve], maximize=True)
    assert chosen is not None  # absolute accuracy always exists
    alpha = alphas[chosen]
    one_shot_edit = Edit.scaled(tasks, ONE_SHOT_ALPHA)
    session.prefetch(
        [(Edit.scaled(tasks, alpha), t, "test") for t in tasks]
        + [(one_shot_edit, t, split) for t in tasks for split in ("val", "test")]
        + [(Edit.zeroshot(), t, "test") for t in tasks]
    )
    return {
        "tasks": tasks,
        "alphas": list(alphas),
        "val_curve": curve,
        "chosen_alpha": alpha,
        "selected_on": selected_on,
        "tuned": {"alpha": alpha, "val": curve[chosen], "test": summarize(accuracies(session, Edit.scaled(tasks, alpha), tasks, "test"), finetuned["test"])},
        "one_shot": {
            "alpha": ONE_SHOT_ALPHA,
            "val": summarize(accuracies(session, one_shot_edit, tasks, "val"), finetuned["val"]),
            "test": summarize(accuracies(session, one_shot_edit, tasks, "test"), finetuned["test"]),
        },
        "zeroshot": {"test": summarize(accuracies(session, Edit.zeroshot(), tasks, "test"), finetuned["test"])},
        "finetuned": finetuned,
    }


def evaluate_addition(session: EvalSession, alphas: Sequence[float] = ALPHA_GRID) -> dict[str, Any]:
    return sweep(session, session.tasks, alphas)


def _run(session: EvalSession, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    alphas = alpha_grid(args.alpha_step)
    return evaluate_addition(session, alphas), {"alphas": list(alphas)}


def _headline(results: dict[str, Any]) -> str:
    t, o = results["tuned"], results["one_shot"]
    return (
        f"alpha={t['alpha']:g}: test abs {pct(t['test']['avg_accuracy'])} / norm {pct(t['test']['avg_normalized'])}; "
        f"one-shot: abs {pct(o['test']['avg_accuracy'])} / norm {pct(o['test']['avg_normalized'])}"
    )


def report(runs: dict[str, RunResults]) -> list[Table]:
    with_addition = with_results(runs, "addition")
    if not with_addition:
        return []
    tasks = task_columns(with_addition, "addition")
    table = Table("addition", "Task addition (test accuracy %, absolute / normalised)", ["method", "alpha", "abs avg", "norm avg", *tasks])
    first = next(iter(with_addition.values())).results("addition")
    zs = first["zeroshot"]["test"]
    table.rows.append(["zero-shot", None, pct_cell(zs["avg_accuracy"]), None, *[pct_cell(zs["per_task"].get(t)) for t in tasks]])
    for name, run in with_addition.items():
        result = run.results("addition")
        for label, block in (("one-shot", result["one_shot"]), ("tuned", result["tuned"])):
            test = block["test"]
            table.rows.append([
                f"{describe(name)} {label}", f"{block['alpha']:g}", pct_cell(test["avg_accuracy"]), pct_cell(test["avg_normalized"]),
                *[pct_cell(test["per_task"].get(t)) for t in tasks],
            ])
    return [table]


EVALUATION = Evaluation(
    "addition", "theta_0 + alpha * sum of task vectors, alpha chosen on Val; test at that alpha and at alpha = 1",
    run=_run, headline=_headline, add_arguments=add_alpha_step, report=report,
)
