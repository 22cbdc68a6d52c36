"""The one list of analyses: the report (tables, figures, claims) and the seeds summary (claims as
"k of n") iterate over it in this order. Adding one: a module with its `ANALYSIS` and one entry here."""

from __future__ import annotations

from ..claims import Claim
from . import continuation, cost, incremental, intervention, paper, sweep
from .base import Analysis, Runs

ANALYSES: tuple[Analysis, ...] = (
    paper.ANALYSIS,
    incremental.ANALYSIS,
    continuation.ANALYSIS,
    intervention.ANALYSIS,
    sweep.ANALYSIS,
    cost.ANALYSIS,
)


def all_claims(runs: Runs) -> list[Claim]:
    return [c for analysis in ANALYSES for c in analysis.claims(runs)]


__all__ = ["ANALYSES", "Analysis", "all_claims"]
