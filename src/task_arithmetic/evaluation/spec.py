"""What an evaluation declares to be run by src/evaluate.py, the study, the results layout and the report."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..reporting.table import RunResults, Table

if TYPE_CHECKING:
    from .session import EvalSession

Runner = Callable[["EvalSession", argparse.Namespace], "tuple[dict[str, Any], dict[str, Any]]"]


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def alpha_step(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1 or abs(round(1 / value) * value - 1) > 1e-9:
        raise argparse.ArgumentTypeError(f"expected a step in (0, 1] that divides 1 (e.g. 0.05, 0.25), got {text}")
    return value


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


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
