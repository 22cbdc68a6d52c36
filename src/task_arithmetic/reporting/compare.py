"""`python src/report.py --compare A B ...`: one table across models, runs and seeds.

Each path is a model's results folder (results/<model_id>/, its run folders inside) or a results
root (every model folder in it, and the seed replicates under seeds/seed-<s>/). Every source's
tidy rows (tidy.py) are pooled; the table shows the headline numbers (test averages over the
tasks at each evaluation's points: zero-shot, fine-tuned, tuned and one-shot addition, negation,
the tau-Jp means, each merging method) per model and run, as mean ± sample sd over the seeds
found (n), so replicates, recipes and models line up in one place.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Iterable

from ..errors import UserError
from ..evaluation.registry import EVALUATIONS
from ..io import atomic_write_text
from .collect import collect
from .table import Table
from .tidy import COLUMNS, tidy_rows, write_tidy

SOURCE_COLUMNS = ("source", *COLUMNS)
# Per-pair evaluations have one point per pair: their rows stay in the pooled file, not the table.
PER_PAIR = frozenset({"pairs", "disentanglement"})
HEADLINE_METRICS = ("accuracy", "normalized_accuracy", "target_accuracy", "control_accuracy", "tau_jp_diagonal_mean", "tau_jp_off_diagonal_mean")


def sources(path: Path) -> list[tuple[Path, str]]:
    """(results root, model id) of every model's results a --compare path names."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"--compare {path}: not a folder; pass results/<model_id> folders or results roots")
    if (path / "report").is_dir() or any((child / f"{name}.json").is_file() for child in path.iterdir() if child.is_dir() for name in EVALUATIONS):
        return [(path.parent, path.name)]  # a model's folder: run folders inside
    found = []
    for root in (path, *sorted(p for p in (path / "seeds").glob("seed-*") if p.is_dir())):
        found += [(root, model.name) for model in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "seeds")]
    if not found:
        raise UserError(f"--compare {path}: no model results in it; pass results/<model_id> folders or results roots")
    return found


def pooled_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for path in paths:
        for root, model_id in sources(path):
            folder = (root / model_id).resolve()
            if folder in seen:
                continue
            seen.add(folder)
            try:
                runs = collect(root, model_id)
            except UserError:
                continue  # a folder without results this version reads (e.g. a merge's)
            rows += [{"source": str(root / model_id), **row} for row in tidy_rows(runs, model_id)]
    if not rows:
        raise UserError(f"no evaluation results under {', '.join(map(str, paths))}; run the evaluations (or the study) first")
    return rows


def _cell(values: list[float], metric: str) -> str:
    """Accuracies in %, other quantities (tau-Jp norms) as they are."""
    scale, fmt = (100.0, "{:.1f}") if metric.endswith("accuracy") else (1.0, "{:.4g}")
    mean = fmt.format(scale * statistics.fmean(values))
    if len(values) == 1:
        return mean
    return f"{mean} ± {fmt.format(scale * statistics.stdev(values))} (n={len(values)})"


def headline_table(rows: list[dict[str, Any]]) -> Table:
    """Rows: (evaluation, point, metric) test averages; columns: model/run; cells: % (mean ± sd over seeds)."""
    picked = [r for r in rows if r["task"] is None and r["split"] == "test" and r["evaluation"] not in PER_PAIR
              and r["metric"] in HEADLINE_METRICS and "val_curve" not in (r["point"] or "")]
    columns = list(dict.fromkeys(f"{r['model']}/{r['run']}" for r in picked))
    measures = list(dict.fromkeys((r["evaluation"], r["point"] or "", r["metric"]) for r in picked))
    cells: dict[tuple[tuple[str, str, str], str], list[float]] = {}
    for r in picked:
        cells.setdefault(((r["evaluation"], r["point"] or "", r["metric"]), f"{r['model']}/{r['run']}"), []).append(r["value"])
    table = Table("compare", "Headline test numbers (accuracies in %; mean ± sd over seeds where several)", ["evaluation", "point", "metric", *columns])
    for measure in measures:
        table.rows.append([*measure, *[_cell(cells[(measure, c)], measure[2]) if (measure, c) in cells else None for c in columns]])
    return table


def compare(paths: list[Path], out: Path | None) -> tuple[Table, list[Path]]:
    """The headline table of every source, and (with `out`) compare.md, compare.csv, compare.parquet there."""
    rows = pooled_rows(paths)
    table = headline_table(rows)
    written: list[Path] = []
    if out is not None:
        written = write_tidy(rows, out, "compare", SOURCE_COLUMNS)
        md = Path(out) / "compare.md"
        atomic_write_text(md, f"Sources: {', '.join(sorted({r['source'] for r in rows}))}\n\n{table.markdown()}")
        written.append(md)
    return table, written
