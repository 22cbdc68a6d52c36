"""What an evaluation declares to be run by src/evaluate.py, the study, the results layout and the report."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..flags import alpha_step, finite_float, positive_int
from ..reporting.table import RunResults, Table

if TYPE_CHECKING:
    from .session import EvalSession

__all__ = ["Evaluation", "Runner", "add_alpha_step", "alpha_step", "finite_float", "pct", "positive_int"]  # the flag types live in flags.py

Runner = Callable[["EvalSession", argparse.Namespace], "tuple[dict[str, Any], dict[str, Any]]"]


def add_alpha_step(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alpha-step", type=alpha_step, default=0.05, help="coefficient grid 0, step, ..., 1 (default 0.05: 21 points)")


@dataclass(frozen=True)
class Evaluation:
    name: str  # results/<model_id>/<run>/<name>.json
    summary: str  # one line: --help and the list of src/evaluate.py
    run: Runner  # (results, settings it adds to the results file) from a session and the parsed flags
    headline: Callable[[dict[str, Any]], str]  # the numbers a user looks at first
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None  # its own flags
    # its report tables from every run's results ([] where no run has them); kept here, beside the
    # runner that writes those results, so that an evaluation with its table is one module plus
    # one registry entry, and the report (reporting/build.py) just iterates the registry
    report: Callable[[dict[str, RunResults]], list[Table]] | None = None
    # what determines its numbers, from its parsed flags and the task list: defaults resolved (a
    # control left to the benchmark becomes its name) and nonsense refused (UserError) before any
    # work; the results file is keyed by it (results.py). None: its own flags as given.
    settings: Callable[[argparse.Namespace, Sequence[str]], dict[str, Any]] | None = None


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
