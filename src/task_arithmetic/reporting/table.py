"""What an evaluation's report tables are made of: one run's results, a table, its cell helpers.

A leaf module: the evaluation modules build their report tables from these, and collect.py
imports the evaluation registry, so nothing here may import an evaluation module (only leaf
helpers such as evaluation/selection.py).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from ..recipes.names import describe as describe_recipe
from ..recipes.names import parse_run_name


@dataclass
class RunResults:
    run: str
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)  # evaluation -> payload
    settings: dict[str, Any] = field(default_factory=dict)

    def results(self, evaluation: str) -> dict[str, Any] | None:
        payload = self.evaluations.get(evaluation)
        return payload["results"] if payload else None

    @property
    def mode(self) -> str | None:
        return self.settings.get("mode")

    @property
    def reg(self) -> str | None:
        return self.settings.get("reg")


# The paper's name for its own method; every other run is described from its plug-ins.
SPECIAL = {"linear-tau_jp": "τJp (linear FT + τJp reg.)"}


def describe(run: str) -> str:
    if run in SPECIAL:
        return f"{run} ({SPECIAL[run]})"
    parsed = parse_run_name(run)
    return f"{run} ({describe_recipe(parsed[0], parsed[1])})" if parsed else run


def pct_cell(value: float | None) -> float | None:
    """A fraction as a table cell's percentage: a number (rounded, so the CSV stays short), not
    the text of spec.pct that headlines print."""
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


def with_results(runs: dict[str, RunResults], evaluation: str) -> dict[str, RunResults]:
    """The runs that have this evaluation's results, in the report's run order."""
    return {name: r for name, r in runs.items() if r.results(evaluation)}


def task_columns(runs: dict[str, RunResults], evaluation: str) -> list[str]:
    """Every task any run evaluated, first-seen order: runs may cover different task lists."""
    tasks: list[str] = []
    for run in runs.values():
        for t in (run.results(evaluation) or {}).get("tasks", run.settings.get("tasks", [])):
            if t not in tasks:
                tasks.append(t)
    return tasks
