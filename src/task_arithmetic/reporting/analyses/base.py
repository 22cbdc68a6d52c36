"""What an analysis declares: tables, figures and claims that read several runs' typed results at
once (the evaluations' own tables read one evaluation each; see evaluation/spec.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ..claims import Claim
from ..table import RunResults, Table

Runs = Mapping[str, RunResults]


def no_tables(runs: Runs) -> list[Table]:
    return []


def no_plots(runs: Runs, folder: Path) -> list[Path]:
    return []


def no_claims(runs: Runs) -> list[Claim]:
    return []


@dataclass(frozen=True)
class Analysis:
    name: str
    tables: Callable[[Runs], list[Table]] = no_tables
    plots: Callable[[Runs, Path], list[Path]] = no_plots
    claims: Callable[[Runs], list[Claim]] = no_claims  # pre-declared criteria: "holds", "does not hold" or "not evaluated"
