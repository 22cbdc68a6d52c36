"""What each recipe's training cost, from the runs' own records (training/cost.py): seconds per
step, images per second, the set-up before the first step and the peak memory, and the step time
relative to standard fine-tuning of the same task."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ...io import metadata_path, read_json
from ...recipes.paper import PAPER
from ..claims import find_run
from ..table import RunResults, Table
from .base import Analysis, Runs


def run_costs(run: RunResults) -> dict[str, dict[str, Any]]:
    """task -> the cost its fine-tuning recorded (absent for runs made elsewhere or by older versions)."""
    out = {}
    for task, vector in (run.settings.get("vectors") or {}).items():
        meta_file = metadata_path(Path(vector["path"]))
        cost = read_json(meta_file).get("cost") if meta_file.is_file() else None
        if cost and cost.get("seconds_per_step"):
            out[task] = cost
    return out


def tables(runs: Runs) -> list[Table]:
    standard = find_run(runs, PAPER.standard)
    reference = run_costs(runs[standard]) if standard else {}
    seen: set[str] = set()
    table = Table("cost", "Training cost per recipe (median over tasks; relative: the same task's standard step)",
                  ["recipe", "s / step", "images / s", "× standard step", "set-up s", "peak memory MB", "device"], float_format="{:.3g}")
    for name, run in runs.items():
        source = run.evaluated.run.name if run.evaluated is not None else name
        costs = run_costs(run)
        if source in seen or not costs:  # post hoc reads the standard runs: one row per trained run
            continue
        seen.add(source)
        ratios = [c["seconds_per_step"] / reference[t]["seconds_per_step"] for t, c in costs.items() if t in reference]
        table.rows.append([
            run.label,
            statistics.median(c["seconds_per_step"] for c in costs.values()),
            statistics.median(c["images_per_second"] for c in costs.values()),
            statistics.median(ratios) if ratios else None,
            statistics.median(c.get("setup_seconds", 0.0) for c in costs.values()),
            max(c.get("peak_memory_mb", 0.0) for c in costs.values()),
            ", ".join(sorted({str(c.get("device")) for c in costs.values()})),
        ])
    return [table] if table.rows else []


ANALYSIS = Analysis("cost", tables=tables)
