"""The tau-Jp paper's claims on addition, one-shot alpha, negation and the tau-Jp-interference
correlation (reporting/claims.py), and the standard figures (reporting/plots.py)."""

from __future__ import annotations

from ..claims import paper_claims
from ..plots import all_plots
from .base import Analysis

ANALYSIS = Analysis("paper", plots=all_plots, claims=paper_claims)
