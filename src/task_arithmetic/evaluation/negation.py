"""Task negation: per target t, theta_0 - alpha * tau_t.

alpha minimises target Val accuracy subject to control Val accuracy >= ratio x zero-shot
control Val accuracy (ties keep the smaller alpha); target and control test accuracy are then
measured at that alpha. When no alpha of the grid meets the constraint the result says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from ..data.registry import control_for, get_task
from ..errors import UserError
from ..flags import check_float, positive_float
from ..reporting.table import RunResults, Table, pct_cell
from .edits import Edit
from .selection import ALPHA_GRID, alpha_grid, best_index, mean
from .spec import Evaluation, Row, alpha_step_param, param, pct

if TYPE_CHECKING:  # the session imports torch: the registry is read by every script's --help
    from .session import EvalSession

CONTROL_RATIO = 0.95


@dataclass(frozen=True)
class NegationParams:
    alpha_step: float = alpha_step_param()
    control: str | None = param(None, "control task (default: the benchmark's, e.g. ImageNet)", study=True)
    control_ratio: float = param(CONTROL_RATIO, "control Val accuracy must stay >= ratio x zero-shot", positive_float)


@dataclass(frozen=True)
class NegationPoint:
    alpha: float
    target_val: float
    control_val: float
    admissible: bool


@dataclass(frozen=True)
class TargetControl:
    target: float
    control: float


@dataclass(frozen=True)
class Negated:
    status: str  # "ok" | "no_admissible_alpha"
    curve: list[NegationPoint]
    chosen_alpha: float | None
    val: TargetControl | None
    test: TargetControl | None  # None: no admissible alpha, no test evaluation made
    zeroshot_target: dict[str, float]  # split -> zero-shot accuracy on the target
    message: str | None = None


@dataclass(frozen=True)
class NegationAverage:
    target_test: float | None  # over the targets with an admissible alpha
    control_test: float | None
    zeroshot_target_test: float | None
    zeroshot_control_test: float
    targets_solved: list[str]
    targets_without_admissible_alpha: list[str]


@dataclass(frozen=True)
class NegationResult:
    SCHEMA: ClassVar[int] = 2
    control: str
    control_ratio: float
    control_floor_val: float
    alphas: list[float]
    zeroshot_control: dict[str, float]
    targets: dict[str, Negated]
    average: NegationAverage


def negate_one(session: EvalSession, target: str, control: str, alphas: Sequence[float], floor: float) -> Negated:
    curve = []
    for alpha in alphas:
        edit = Edit.scaled([target], -alpha)
        control_val = session.accuracy(edit, control, "val")
        curve.append(NegationPoint(alpha, session.accuracy(edit, target, "val"), control_val, control_val >= floor))
    chosen = best_index(list(alphas), [p.target_val for p in curve], maximize=False, admissible=[p.admissible for p in curve])
    zeroshot = {split: session.accuracy(Edit.zeroshot(), target, split) for split in ("val", "test")}
    if chosen is None:
        best_control = max(p.control_val for p in curve)
        message = f"no alpha in the grid keeps control Val accuracy >= {floor:.4f} (best reached {best_control:.4f}); no test evaluation was made"
        return Negated("no_admissible_alpha", curve, None, None, None, zeroshot, message)
    alpha = alphas[chosen]
    edit = Edit.scaled([target], -alpha)
    test = TargetControl(session.accuracy(edit, target, "test"), session.accuracy(edit, control, "test"))
    return Negated("ok", curve, alpha, TargetControl(curve[chosen].target_val, curve[chosen].control_val), test, zeroshot)


def evaluate_negation(session: EvalSession, control: str, alphas: Sequence[float] = ALPHA_GRID, ratio: float = CONTROL_RATIO) -> NegationResult:
    if control in session.tasks:
        raise UserError(f"the control task {control} is one of the negated tasks; a task cannot be its own control: pass --control <another task>")
    session.prefetch(
        [(Edit.zeroshot(), d, split) for d in (*session.tasks, control) for split in ("val", "test")]
        + [(Edit.scaled([t], -alpha), d, "val") for t in session.tasks for alpha in alphas for d in (t, control)]
    )
    zeroshot_control = {split: session.accuracy(Edit.zeroshot(), control, split) for split in ("val", "test")}
    floor = ratio * zeroshot_control["val"]
    targets = {t: negate_one(session, t, control, alphas, floor) for t in session.tasks}
    solved = [t for t, r in targets.items() if r.test is not None]
    average = NegationAverage(
        target_test=mean([targets[t].test.target for t in solved]),  # type: ignore[union-attr]
        control_test=mean([targets[t].test.control for t in solved]),  # type: ignore[union-attr]
        zeroshot_target_test=mean([targets[t].zeroshot_target["test"] for t in session.tasks]),
        zeroshot_control_test=zeroshot_control["test"],
        targets_solved=solved,
        targets_without_admissible_alpha=[t for t in session.tasks if t not in solved],
    )
    return NegationResult(control, ratio, floor, list(alphas), zeroshot_control, targets, average)


def resolve_control(given: str | None, tasks: Sequence[str]) -> str:
    control = given or control_for(tasks)
    if control is None:
        raise UserError("these tasks' benchmark has no control task; pass --control <task>")
    return get_task(control).name


def _resolve(params: NegationParams, tasks: Sequence[str]) -> NegationParams:
    control = resolve_control(params.control, tasks)
    if control in tasks:
        raise UserError(f"the control task {control} is one of the negated tasks; pass a --control outside --tasks (it must measure what negation keeps)")
    check_float("--control-ratio", params.control_ratio, 0.0, lo_open=True)
    return dataclasses.replace(params, control=control)


def _run(session: EvalSession, params: NegationParams) -> NegationResult:
    assert params.control is not None  # resolved
    return evaluate_negation(session, params.control, alpha_grid(params.alpha_step), params.control_ratio)


def _headline(r: NegationResult) -> str:
    missing = r.average.targets_without_admissible_alpha
    note = f"; no admissible alpha for {', '.join(missing)}" if missing else ""
    return f"target test {pct(r.average.target_test)}, control test {pct(r.average.control_test)}{note}"


def report(runs: Mapping[str, RunResults]) -> list[Table]:
    found = {name: r for name, run in runs.items() if (r := run.get(EVALUATION)) is not None}
    if not found:
        return []
    first = next(iter(found.values()))
    table = Table("negation", f"Task negation (test accuracy %, target ↓ / control {first.control} ↑, tuned alpha)",
                  ["method", "target avg", "control avg", "alphas", "note"])
    table.rows.append(["zero-shot", pct_cell(first.average.zeroshot_target_test), pct_cell(first.average.zeroshot_control_test), None, None])
    for name, result in found.items():
        avg = result.average
        alphas = ", ".join(f"{t}:{r.chosen_alpha}" if r.chosen_alpha is not None else f"{t}:none" for t, r in result.targets.items())
        missing = avg.targets_without_admissible_alpha
        note = f"no admissible alpha for {', '.join(missing)} (averages over the rest)" if missing else None
        table.rows.append([runs[name].label, pct_cell(avg.target_test), pct_cell(avg.control_test), alphas, note])
    return [table]


def rows(r: NegationResult) -> list[Row]:
    """Per target: its accuracy and the control's at the chosen alpha (point "negated") and along the
    Val curve; zero-shot accuracies; the averages over the targets with an admissible alpha."""
    out = [Row("control_accuracy", v, r.control, split, "zeroshot", 0.0) for split, v in r.zeroshot_control.items()]
    for target, n in r.targets.items():
        out += [Row("target_accuracy", v, target, split, "zeroshot", 0.0) for split, v in n.zeroshot_target.items()]
        for p in n.curve:
            out += [Row("target_accuracy", p.target_val, target, "val", "val_curve", p.alpha), Row("control_accuracy", p.control_val, target, "val", "val_curve", p.alpha)]
        for split, tc in (("val", n.val), ("test", n.test)):
            if tc is not None:
                out += [Row("target_accuracy", tc.target, target, split, "negated", n.chosen_alpha), Row("control_accuracy", tc.control, target, split, "negated", n.chosen_alpha)]
    a = r.average
    for metric, value in (("target_accuracy", a.target_test), ("control_accuracy", a.control_test)):
        if value is not None:
            out.append(Row(metric, value, None, "test", "negated"))
    if a.zeroshot_target_test is not None:
        out.append(Row("target_accuracy", a.zeroshot_target_test, None, "test", "zeroshot", 0.0))
    return out + [Row("control_accuracy", a.zeroshot_control_test, None, "test", "zeroshot", 0.0)]


EVALUATION: Evaluation[NegationParams, NegationResult] = Evaluation(
    "negation", "theta_0 - alpha * tau_t per task: lowest target Val accuracy with the control >= ratio x zero-shot",
    NegationParams, NegationResult, run=_run, headline=_headline, report=report, needs_control=True, resolve=_resolve, rows=rows,
)
