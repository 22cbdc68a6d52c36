"""Tables shaped like the tau-Jp paper's, as Markdown and CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from ..evaluation.selection import mean
from ..recipes.names import describe as describe_recipe
from ..recipes.names import parse_run_name
from .collect import RunResults

# The paper's name for its own method; every other run is described from its plug-ins.
SPECIAL = {"linear-tau_jp": "τJp (linear FT + τJp reg.)"}


def describe(run: str) -> str:
    if run in SPECIAL:
        return f"{run} ({SPECIAL[run]})"
    parsed = parse_run_name(run)
    return f"{run} ({describe_recipe(parsed[0], parsed[1])})" if parsed else run


def pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    float_format: str = "{:.1f}"  # percentages; the tau-Jp matrices use significant digits

    def markdown(self) -> str:
        def cell(v: Any) -> str:
            if v is None:
                return "–"
            if isinstance(v, float):
                return self.float_format.format(v)
            return str(v)

        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        writer.writerows([["" if v is None else v for v in row] for row in self.rows])
        return buffer.getvalue()


def _task_columns(runs: dict[str, RunResults], evaluation: str) -> list[str]:
    tasks: list[str] = []
    for run in runs.values():
        for t in (run.results(evaluation) or {}).get("tasks", run.settings.get("tasks", [])):
            if t not in tasks:
                tasks.append(t)
    return tasks


def addition_table(runs: dict[str, RunResults]) -> Table | None:
    with_addition = {name: r for name, r in runs.items() if r.results("addition")}
    if not with_addition:
        return None
    tasks = _task_columns(with_addition, "addition")
    table = Table("addition", "Task addition (test accuracy %, absolute / normalised)", ["method", "alpha", "abs avg", "norm avg", *tasks])
    first = next(iter(with_addition.values())).results("addition")
    zs = first["zeroshot"]["test"]
    table.rows.append(["zero-shot", None, pct(zs["avg_accuracy"]), None, *[pct(zs["per_task"].get(t)) for t in tasks]])
    for name, run in with_addition.items():
        result = run.results("addition")
        for label, block in (("one-shot", result["one_shot"]), ("tuned", result["tuned"])):
            test = block["test"]
            table.rows.append([
                f"{describe(name)} {label}", f"{block['alpha']:g}", pct(test["avg_accuracy"]), pct(test["avg_normalized"]),
                *[pct(test["per_task"].get(t)) for t in tasks],
            ])
    return table


def merging_table(runs: dict[str, RunResults]) -> Table | None:
    """Rows: merging methods; columns: recipes; cells: test accuracy %, absolute / normalised (c)."""
    with_merging = {name: r for name, r in runs.items() if r.results("merging")}
    if not with_merging:
        return None
    methods: list[str] = []
    for run in with_merging.values():
        methods += [m for m in run.results("merging")["methods"] if m not in methods]
    table = Table("merging", "Merging method × recipe (test accuracy %, absolute / normalised; c = coefficient chosen on Val)", ["method", *[describe(n) for n in with_merging]])
    for method in methods:
        row: list[Any] = [method]
        for run in with_merging.values():
            result = run.results("merging")["methods"].get(method)
            if result is None:
                row.append(None)
                continue
            test = result["test"]
            norm = pct(test["avg_normalized"])
            cell = f"{pct(test['avg_accuracy']):.1f} / {'–' if norm is None else f'{norm:.1f}'}"
            row.append(cell + (f" (c={result['coefficient']:g})" if result.get("coefficient") is not None else ""))
        table.rows.append(row)
    return table


def negation_table(runs: dict[str, RunResults]) -> Table | None:
    with_negation = {name: r for name, r in runs.items() if r.results("negation")}
    if not with_negation:
        return None
    first = next(iter(with_negation.values())).results("negation")
    control = first["control"]
    table = Table("negation", f"Task negation (test accuracy %, target ↓ / control {control} ↑, tuned alpha)",
                  ["method", "target avg", "control avg", "alphas", "note"])
    avg = first["average"]
    table.rows.append(["zero-shot", pct(avg["zeroshot_target_test"]), pct(avg["zeroshot_control_test"]), None, None])
    for name, run in with_negation.items():
        result = run.results("negation")
        avg = result["average"]
        alphas = ", ".join(f"{t}:{r['chosen_alpha']}" if r["chosen_alpha"] is not None else f"{t}:none" for t, r in result["targets"].items())
        missing = avg["targets_without_admissible_alpha"]
        note = f"no admissible alpha for {', '.join(missing)} (averages over the rest)" if missing else None
        table.rows.append([describe(name), pct(avg["target_test"]), pct(avg["control_test"]), alphas, note])
    return table


def single_task_table(runs: dict[str, RunResults]) -> Table | None:
    with_single = {name: r for name, r in runs.items() if r.results("single_task")}
    if not with_single:
        return None
    tasks = _task_columns(with_single, "single_task")
    table = Table("single_task", "Single-task accuracy (test %)", ["model", "avg", *tasks])

    def row(label: str, per_task: dict) -> list[Any]:
        values = [per_task[t]["test"]["accuracy"] if t in per_task else None for t in tasks]
        present = [v for v in values if v is not None]
        return [label, pct(sum(present) / len(present)) if present else None, *[pct(v) for v in values]]

    table.rows.append(row("zero-shot", next(iter(with_single.values())).results("single_task")["zeroshot"]))
    for name, run in with_single.items():
        table.rows.append(row(f"{describe(name)} fine-tuned", run.results("single_task")["finetuned"]))
    return table


def pairs_table(runs: dict[str, RunResults]) -> Table | None:
    with_pairs = {name: r for name, r in runs.items() if r.results("pairs")}
    if not with_pairs:
        return None
    table = Table("pairs", "Pairwise addition (mean normalised test accuracy % over pairs)",
                  ["method", "pairs", "tuned norm", "one-shot norm", "worst pair (tuned)"])
    for name, run in with_pairs.items():
        pairs = run.results("pairs")["pairs"]
        tuned = {p: v["tuned"]["test"]["avg_normalized"] for p, v in pairs.items()}
        one_shot = [v["one_shot"]["test"]["avg_normalized"] for v in pairs.values()]
        scored = [p for p in tuned if tuned[p] is not None]  # None: both fine-tuned accuracies were 0
        worst = min(scored, key=lambda p: tuned[p]) if scored else None
        table.rows.append([describe(name), len(pairs), pct(mean(list(tuned.values()))), pct(mean(one_shot)), "–" if worst is None else f"{worst} ({100 * tuned[worst]:.1f})"])
    return table


def tau_jp_tables(runs: dict[str, RunResults]) -> list[Table]:
    tables = []
    for name, run in runs.items():
        result = run.results("tau_jp")
        if not result:
            continue
        table = Table(f"tau_jp_{name}", f"τJp matrix of {describe(name)}: mean ‖J f(x_j)·τ_i‖ on {result['split']} (rows τ_i, columns x_j)",
                      ["vector", *result["datasets"]], float_format="{:.4g}")
        for vector, values in zip(result["vectors"], result["matrix"]):
            table.rows.append([vector, *[round(v, 6) for v in values]])
        tables.append(table)
    return tables

