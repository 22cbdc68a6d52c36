"""Task negation: per target t, theta_0 - alpha * tau_t.

alpha minimises target Val accuracy subject to control Val accuracy >= ratio x zero-shot
control Val accuracy (ties keep the smaller alpha); target and control test accuracy are then
measured at that alpha. When no alpha of the grid meets the constraint the result says so.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from ..data.registry import get_task
from ..errors import UserError
from ..flags import nonnegative_float
from ..reporting.table import RunResults, Table, describe, pct_cell, with_results
from .edits import Edit
from .selection import ALPHA_GRID, alpha_grid, best_index, mean
from .session import EvalSession, default_control
from .spec import Evaluation, add_alpha_step, pct

CONTROL_RATIO = 0.95


def negate_one(session: EvalSession, target: str, control: str, alphas: Sequence[float], floor: float) -> dict[str, Any]:
    curve = []
    for alpha in alphas:
        edit = Edit.scaled([target], -alpha)
        control_val = session.accuracy(edit, control, "val")
        curve.append({
            "alpha": alpha,
            "target_val": session.accuracy(edit, target, "val"),
            "control_val": control_val,
            "admissible": control_val >= floor,
        })
    chosen = best_index(list(alphas), [p["target_val"] for p in curve], maximize=False, admissible=[p["admissible"] for p in curve])
    zeroshot = {split: session.accuracy(Edit.zeroshot(), target, split) for split in ("val", "test")}
    if chosen is None:
        best_control = max(p["control_val"] for p in curve)
        return {
            "status": "no_admissible_alpha",
            "message": (
                f"no alpha in the grid keeps control Val accuracy >= {floor:.4f} "
                f"(best reached {best_control:.4f}); no test evaluation was made"
            ),
            "curve": curve,
            "chosen_alpha": None,
            "test": None,
            "zeroshot_target": zeroshot,
        }
    alpha = alphas[chosen]
    edit = Edit.scaled([target], -alpha)
    return {
        "status": "ok",
        "curve": curve,
        "chosen_alpha": alpha,
        "val": {"target": curve[chosen]["target_val"], "control": curve[chosen]["control_val"]},
        "test": {"target": session.accuracy(edit, target, "test"), "control": session.accuracy(edit, control, "test")},
        "zeroshot_target": zeroshot,
    }


def evaluate_negation(
    session: EvalSession, control: str, alphas: Sequence[float] = ALPHA_GRID, ratio: float = CONTROL_RATIO
) -> dict[str, Any]:
    session.prefetch(
        [(Edit.zeroshot(), d, split) for d in (*session.tasks, control) for split in ("val", "test")]
        + [(Edit.scaled([t], -alpha), d, "val") for t in session.tasks for alpha in alphas for d in (t, control)]
    )
    zeroshot_control = {split: session.accuracy(Edit.zeroshot(), control, split) for split in ("val", "test")}
    floor = ratio * zeroshot_control["val"]
    targets = {t: negate_one(session, t, control, alphas, floor) for t in session.tasks}
    solved = [t for t, r in targets.items() if r["status"] == "ok"]
    return {
        "control": control,
        "control_ratio": ratio,
        "control_floor_val": floor,
        "alphas": list(alphas),
        "zeroshot_control": zeroshot_control,
        "targets": targets,
        "average": {
            "target_test": mean([targets[t]["test"]["target"] for t in solved]),
            "control_test": mean([targets[t]["test"]["control"] for t in solved]),
            "zeroshot_target_test": mean([targets[t]["zeroshot_target"]["test"] for t in session.tasks]),
            "zeroshot_control_test": zeroshot_control["test"],
            "targets_solved": solved,
            "targets_without_admissible_alpha": [t for t in session.tasks if t not in solved],
        },
    }


def _add_arguments(p: argparse.ArgumentParser) -> None:
    add_alpha_step(p)
    p.add_argument("--control", default=None, help="control task (default: the benchmark's, e.g. ImageNet)")
    p.add_argument("--control-ratio", type=nonnegative_float, default=CONTROL_RATIO, help="control Val acc must stay >= ratio x zero-shot")


def _control(args: argparse.Namespace, tasks: Sequence[str]) -> str:
    control = args.control or default_control(tasks)
    if control is None:
        raise UserError("these tasks' benchmark has no control task; pass --control <task>")
    control = get_task(control).name
    if control in tasks:
        raise UserError(f"the control task {control} is one of the negated tasks; pass a --control outside --tasks (it must measure what negation keeps)")
    return control


def _settings(args: argparse.Namespace, tasks: Sequence[str]) -> dict[str, Any]:
    return {"alpha_step": args.alpha_step, "control": _control(args, tasks), "control_ratio": args.control_ratio}


def _run(session: EvalSession, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    control = _control(args, session.tasks)
    alphas = alpha_grid(args.alpha_step)
    results = evaluate_negation(session, control, alphas, ratio=args.control_ratio)
    return results, {"control": control, "control_ratio": args.control_ratio, "alphas": list(alphas)}


def _headline(results: dict[str, Any]) -> str:
    a = results["average"]
    missing = a["targets_without_admissible_alpha"]
    note = f"; no admissible alpha for {', '.join(missing)}" if missing else ""
    return f"target test {pct(a['target_test'])}, control test {pct(a['control_test'])}{note}"


def report(runs: dict[str, RunResults]) -> list[Table]:
    with_negation = with_results(runs, "negation")
    if not with_negation:
        return []
    first = next(iter(with_negation.values())).results("negation")
    control = first["control"]
    table = Table("negation", f"Task negation (test accuracy %, target ↓ / control {control} ↑, tuned alpha)",
                  ["method", "target avg", "control avg", "alphas", "note"])
    avg = first["average"]
    table.rows.append(["zero-shot", pct_cell(avg["zeroshot_target_test"]), pct_cell(avg["zeroshot_control_test"]), None, None])
    for name, run in with_negation.items():
        result = run.results("negation")
        avg = result["average"]
        alphas = ", ".join(f"{t}:{r['chosen_alpha']}" if r["chosen_alpha"] is not None else f"{t}:none" for t, r in result["targets"].items())
        missing = avg["targets_without_admissible_alpha"]
        note = f"no admissible alpha for {', '.join(missing)} (averages over the rest)" if missing else None
        table.rows.append([describe(name), pct_cell(avg["target_test"]), pct_cell(avg["control_test"]), alphas, note])
    return [table]


EVALUATION = Evaluation(
    "negation", "theta_0 - alpha * tau_t per task: lowest target Val accuracy with the control >= ratio x zero-shot",
    run=_run, headline=_headline, add_arguments=_add_arguments, report=report, settings=_settings,
)
