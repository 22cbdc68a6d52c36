"""The report's statement of the precision every run was trained and evaluated in.

A report never compares runs of different precisions silently: when its runs (or one run's
evaluations) differ, the note says which run used what, so precision effects are not read as
recipe effects.
"""

from __future__ import annotations

from collections.abc import Mapping

from .table import RunResults


def _precisions(run: RunResults) -> tuple[set[str], set[str]]:
    """(training precisions of the run's task vectors, precisions its evaluations ran in)."""
    trained: set[str] = set()
    evaluated: set[str] = set()
    for payload in run.payloads.values():
        settings = payload.get("settings", {})
        evaluated.add(str(settings.get("precision", "fp32")))  # results written before the setting were fp32
        for vector in settings.get("vectors", {}).values():
            trained.add(str(vector.get("precision", "fp32" if vector.get("config") else "unknown")))
    return trained, evaluated


def precision_note(runs: Mapping[str, RunResults]) -> tuple[bool, str]:
    """(mixed?, one paragraph for report.md)."""
    found = {name: _precisions(run) for name, run in runs.items()}
    everything = set().union(*(t | e for t, e in found.values())) if found else set()
    if len(everything) <= 1:
        value = next(iter(everything), "fp32")
        return False, f"Precision: {value} (fine-tuning and evaluation of every run)."
    parts = [f"{name}: trained {'/'.join(sorted(t)) or 'n/a'}, evaluated {'/'.join(sorted(e)) or 'n/a'}" for name, (t, e) in found.items()]
    return True, ("**Mixed precision**: these runs were not all trained and evaluated in one precision, so differences "
                  "between them include precision effects (" + "; ".join(parts) + ").")
