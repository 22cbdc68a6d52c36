"""The report: results/<model_id>/report/{report.md, *.csv, *.png, claims.json} and the tidy
results (results.csv, results.parquet: every number, one per row; reporting/tidy.py).

report.md opens with what a reader must know first: the provenance of the numbers (code, model,
fine-tuning and evaluation settings, data splits) and the caveats (a smoke run, capped sets)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..evaluation.registry import EVALUATIONS
from ..io import atomic_write_json, atomic_write_text
from ..paths import Layout
from .analyses import ANALYSES, all_claims
from .caveats import caveat_lines, normalised_note
from .collect import collect
from .precision_note import precision_note
from .provenance import provenance_block
from .tidy import tidy_rows, write_tidy


def build_report(layout: Layout, model_id: str) -> list[Path]:
    stale: list[str] = []
    runs = collect(layout.results_root, model_id, stale)
    folder = layout.report_dir(model_id)
    # each evaluation brings its own tables (evaluation/spec.py), then each analysis reads several runs'
    tables = [t for e in EVALUATIONS.values() if e.report for t in e.report(runs)] + [t for a in ANALYSES for t in a.tables(runs)]
    claims = all_claims(runs)
    written: list[Path] = []
    tidy = tidy_rows(runs, model_id)
    written += write_tidy(tidy, folder)
    for table in tables:
        path = folder / f"{table.name}.csv"
        atomic_write_text(path, table.csv())
        written.append(path)
    plots = [p for a in ANALYSES for p in a.plots(runs, folder)]
    written += plots
    claims_path = folder / "claims.json"
    atomic_write_json(claims_path, [dataclasses.asdict(c) for c in claims])
    written.append(claims_path)

    lines = [f"# Task-arithmetic report: {model_id}", "", *provenance_block(runs, model_id), *caveat_lines(runs)]
    lines += ["## Runs", "", f"Runs: {', '.join(runs)}. Evaluations found:", ""]
    for name, run in runs.items():
        lines.append(f"- {name}: {', '.join(run.results)}")
    if stale:
        lines += ["", f"Left out, written by another version of the suite (re-run these evaluations): {'; '.join(stale)}."]
    lines += ["", precision_note(runs)[1]]
    lines += ["", "## Claims", ""]
    for c in claims:
        lines.append(f"- **{c.verdict}** — {c.claim} [{c.scope}]: {c.details}")
    lines += ["", "## Tables", ""]
    lines.append("Every number below is also one row of `results.csv` / `results.parquet` (model, run, seed, evaluation, task, "
                 "split, point, alpha, metric, value), for pandas or any other tool.\n")
    for table in tables:
        lines += [table.markdown(), f"CSV: `{table.name}.csv`", ""]
    lines += normalised_note(tidy)
    if plots:
        lines += ["## Figures", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    report = folder / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    written.append(report)
    return written
