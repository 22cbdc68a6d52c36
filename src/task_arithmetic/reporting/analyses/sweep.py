"""The regulariser's sensitivity (`run_study.py --sweep option=v1,v2,...`): single-task accuracy,
tuned and one-shot addition, negation and the mean off-diagonal tau-Jp against the option's value,
one table and one figure per swept recipe. Sweep points are the runs tagged <option><value>
(recipes/identity.py, sweep_tag); the value read back is the one the runs' training recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...evaluation import addition, negation, single_task, tau_jp
from ...recipes import MODES, REGULARIZERS, EvaluatedRun
from ...recipes.identity import parse_sweep_tag
from ..table import RunResults, Table, pct_cell
from .base import Analysis, Runs
from .figures import figure, save

OPTIONS = tuple(n for p in (*MODES.values(), *REGULARIZERS.values()) for n in p.option_names())
METRICS = ("single-task", "addition tuned norm", "addition α = 1 norm", "negation target", "off-diagonal τJp")


def points(runs: Runs) -> dict[tuple[str, str], list[tuple[float, RunResults]]]:
    """(untagged results folder, option) -> [(value, run)], sorted by value."""
    out: dict[tuple[str, str], list[tuple[float, RunResults]]] = {}
    for run in runs.values():
        if run.evaluated is None or not run.evaluated.run.tag:
            continue
        found = parse_sweep_tag(run.evaluated.run.tag, OPTIONS)
        if found is None:
            continue
        option, value = found
        first: dict[str, Any] = next(iter((run.settings.get("vectors") or {}).values()), {})
        recorded = first.get("config", {}).get(option)
        base = EvaluatedRun(run.evaluated.run.untagged(), run.evaluated.readout).name
        out.setdefault((base, option), []).append((float(recorded) if recorded is not None else value, run))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in out.items()}


def metrics(run: RunResults) -> dict[str, float | None]:
    single, added, negated, matrix = (run.get(e.EVALUATION) for e in (single_task, addition, negation, tau_jp))
    return {
        "single-task": single.summary.finetuned_test_avg if single else None,
        "addition tuned norm": added.tuned.test.avg_normalized if added else None,
        "addition α = 1 norm": added.one_shot.test.avg_normalized if added else None,
        "negation target": negated.average.target_test if negated else None,
        "off-diagonal τJp": matrix.off_diagonal_mean if matrix else None,
    }


def tables(runs: Runs) -> list[Table]:
    out = []
    for (base, option), found in points(runs).items():
        table = Table(f"sweep_{base}_{option}", f"Sensitivity of {base} to {option} (test %; off-diagonal τJp as measured)", [option, *METRICS])
        for value, run in found:
            m = metrics(run)
            table.rows.append([f"{value:g}", *[round(v, 6) if k == "off-diagonal τJp" and v is not None else pct_cell(v) for k, v in m.items()]])
        out.append(table)
    return out


def plots(runs: Runs, folder: Path) -> list[Path]:
    out = []
    for (base, option), found in points(runs).items():
        fig, (left, right) = figure(11, 3.8, ncols=2)
        values = [v for v, _ in found]
        for name in METRICS[:-1]:
            ys = [metrics(run)[name] for _, run in found]
            left.plot(values, [100 * y if y is not None else float("nan") for y in ys], marker="o", label=name)
        right.plot(values, [metrics(run)["off-diagonal τJp"] or float("nan") for _, run in found], marker="o", color="k")
        for ax, ylabel in ((left, "test accuracy (%)"), (right, "mean off-diagonal τJp")):
            ax.set_xscale("symlog", linthresh=min((v for v in values if v > 0), default=1.0))
            ax.set_xlabel(option)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        left.legend(fontsize=7)
        fig.suptitle(f"{base}: sensitivity to {option}")
        out.append(save(fig, folder / f"sweep_{base}_{option}.png"))
    return out


ANALYSIS = Analysis("sweep", tables=tables, plots=plots)  # a sensitivity curve is reported, not judged
