"""Task addition: theta_0 + alpha * sum_t tau_t, alpha chosen on the Val parts.

Normalised accuracy of task d = acc(edited, d) / acc(single-task fine-tuned of the same recipe, d);
alpha maximises the average normalised Val accuracy (ties keep the smaller alpha); the test set
is evaluated once at that alpha, and once at alpha = 1 ("one-shot", no search).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from ..reporting.table import RunResults, Table, pct_cell, task_columns
from .edits import Edit
from .selection import ALPHA_GRID, alpha_grid, best_index, mean
from .spec import Evaluation, Row, alpha_step_param, pct

if TYPE_CHECKING:  # the session imports torch: the registry is read by every script's --help
    from .session import EvalSession

ONE_SHOT_ALPHA = 1.0


@dataclass(frozen=True)
class AdditionParams:
    alpha_step: float = alpha_step_param()


@dataclass(frozen=True)
class Scores:
    """Accuracies of one edit on several tasks, absolute and normalised by each task's own
    fine-tuned model (None where that model's accuracy is 0)."""

    per_task: dict[str, float]
    per_task_normalized: dict[str, float | None]
    avg_accuracy: float
    avg_normalized: float | None


@dataclass(frozen=True)
class CurvePoint(Scores):
    alpha: float


@dataclass(frozen=True)
class Chosen:
    alpha: float
    val: Scores
    test: Scores


@dataclass(frozen=True)
class ZeroShot:
    test: Scores


@dataclass(frozen=True)
class AdditionResult:
    SCHEMA: ClassVar[int] = 2
    tasks: list[str]
    alphas: list[float]
    val_curve: list[CurvePoint]
    chosen_alpha: float
    selected_on: str  # avg_normalized, or avg_accuracy when every fine-tuned Val accuracy is 0
    tuned: Chosen
    one_shot: Chosen
    zeroshot: ZeroShot
    finetuned: dict[str, dict[str, float]]  # split -> task -> the normaliser


def summarize(per_task: Mapping[str, float], finetuned: Mapping[str, float]) -> Scores:
    normalized = {t: (acc / finetuned[t] if finetuned[t] > 0 else None) for t, acc in per_task.items()}
    return Scores(dict(per_task), normalized, mean(list(per_task.values())) or 0.0, mean(list(normalized.values())))


def accuracies(session: EvalSession, edit: Edit, tasks: Sequence[str], split: str) -> dict[str, float]:
    return {t: session.accuracy(edit, t, split) for t in tasks}


def choose(alphas: Sequence[float], curve: Sequence[Scores]) -> tuple[int, str]:
    """The grid point with the best average normalised Val accuracy (ties: the smaller alpha), or
    the best absolute one where normalised accuracy is undefined (every fine-tuned Val accuracy 0)."""
    chosen = best_index(list(alphas), [c.avg_normalized for c in curve], maximize=True)
    if chosen is not None:
        return chosen, "avg_normalized"
    chosen = best_index(list(alphas), [c.avg_accuracy for c in curve], maximize=True)
    assert chosen is not None  # absolute accuracy always exists
    return chosen, "avg_accuracy"


def sweep(session: EvalSession, tasks: Sequence[str], alphas: Sequence[float]) -> AdditionResult:
    """The addition protocol for any subset of the session's tasks (all of them, or a pair)."""
    tasks = list(tasks)
    session.prefetch(
        [(Edit.scaled([t], 1.0), t, split) for t in tasks for split in ("val", "test")]
        + [(Edit.scaled(tasks, alpha), t, "val") for alpha in alphas for t in tasks]
    )
    finetuned = {split: {t: session.finetuned_accuracy(t, split) for t in tasks} for split in ("val", "test")}
    curve = []
    for alpha in alphas:
        s = summarize(accuracies(session, Edit.scaled(tasks, alpha), tasks, "val"), finetuned["val"])
        curve.append(CurvePoint(s.per_task, s.per_task_normalized, s.avg_accuracy, s.avg_normalized, alpha))
    chosen, selected_on = choose(alphas, curve)
    alpha = alphas[chosen]
    one_shot_edit = Edit.scaled(tasks, ONE_SHOT_ALPHA)
    session.prefetch(
        [(Edit.scaled(tasks, alpha), t, "test") for t in tasks]
        + [(one_shot_edit, t, split) for t in tasks for split in ("val", "test")]
        + [(Edit.zeroshot(), t, "test") for t in tasks]
    )

    def scores(edit: Edit, split: str) -> Scores:
        return summarize(accuracies(session, edit, tasks, split), finetuned[split])

    return AdditionResult(
        tasks=tasks,
        alphas=list(alphas),
        val_curve=curve,
        chosen_alpha=alpha,
        selected_on=selected_on,
        tuned=Chosen(alpha, curve[chosen], scores(Edit.scaled(tasks, alpha), "test")),
        one_shot=Chosen(ONE_SHOT_ALPHA, scores(one_shot_edit, "val"), scores(one_shot_edit, "test")),
        zeroshot=ZeroShot(scores(Edit.zeroshot(), "test")),
        finetuned=finetuned,
    )


def evaluate_addition(session: EvalSession, alphas: Sequence[float] = ALPHA_GRID) -> AdditionResult:
    return sweep(session, session.tasks, alphas)


def _run(session: EvalSession, params: AdditionParams) -> AdditionResult:
    return evaluate_addition(session, alpha_grid(params.alpha_step))


def _headline(r: AdditionResult) -> str:
    return (
        f"alpha={r.tuned.alpha:g}: test abs {pct(r.tuned.test.avg_accuracy)} / norm {pct(r.tuned.test.avg_normalized)}; "
        f"one-shot: abs {pct(r.one_shot.test.avg_accuracy)} / norm {pct(r.one_shot.test.avg_normalized)}"
    )


def score_rows(s: Scores, split: str, point: str, alpha: float | None) -> list[Row]:
    """Each task's accuracy and normalised accuracy, then their averages (task None)."""
    rows = [Row("accuracy", v, t, split, point, alpha) for t, v in s.per_task.items()]
    rows += [Row("normalized_accuracy", v, t, split, point, alpha) for t, v in s.per_task_normalized.items() if v is not None]
    rows.append(Row("accuracy", s.avg_accuracy, None, split, point, alpha))
    if s.avg_normalized is not None:
        rows.append(Row("normalized_accuracy", s.avg_normalized, None, split, point, alpha))
    return rows


def chosen_rows(c: Chosen, point: str) -> list[Row]:
    return score_rows(c.val, "val", point, c.alpha) + score_rows(c.test, "test", point, c.alpha)


def curve_rows(curve: Sequence[CurvePoint], point: str = "val_curve") -> list[Row]:
    return [row for p in curve for row in score_rows(p, "val", point, p.alpha)]


def rows(r: AdditionResult) -> list[Row]:
    out = curve_rows(r.val_curve) + chosen_rows(r.tuned, "tuned") + chosen_rows(r.one_shot, "one_shot")
    out += score_rows(r.zeroshot.test, "test", "zeroshot", 0.0)
    return out + [Row("accuracy", v, t, split, "finetuned") for split, per_task in r.finetuned.items() for t, v in per_task.items()]


def report(runs: Mapping[str, RunResults]) -> list[Table]:
    found = {name: r for name, run in runs.items() if (r := run.get(EVALUATION)) is not None}
    if not found:
        return []
    tasks = task_columns(r.tasks for r in found.values())
    table = Table("addition", "Task addition (test accuracy %, absolute / normalised)", ["method", "alpha", "abs avg", "norm avg", *tasks])
    zs = next(iter(found.values())).zeroshot.test
    table.rows.append(["zero-shot", None, pct_cell(zs.avg_accuracy), None, *[pct_cell(zs.per_task.get(t)) for t in tasks]])
    for name, result in found.items():
        for label, block in (("one-shot", result.one_shot), ("tuned", result.tuned)):
            table.rows.append([
                f"{runs[name].label} {label}", f"{block.alpha:g}", pct_cell(block.test.avg_accuracy), pct_cell(block.test.avg_normalized),
                *[pct_cell(block.test.per_task.get(t)) for t in tasks],
            ])
    return [table]


EVALUATION: Evaluation[AdditionParams, AdditionResult] = Evaluation(
    "addition", "theta_0 + alpha * sum of task vectors, alpha chosen on Val; test at that alpha and at alpha = 1",
    AdditionParams, AdditionResult, run=_run, headline=_headline, report=report, min_tasks=2, rows=rows,
)
