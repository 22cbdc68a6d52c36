"""Tidy results: every number of every evaluation of a model as one long-format row, written with
the report as results/<model_id>/report/results.csv and results.parquet.

Columns: model, run, seed, evaluation, task, split, point, alpha, metric, value (COLUMNS). Each
evaluation says which task, split and point of its protocol a number belongs to (its `rows`,
evaluation/spec.py); this module adds where the result came from. Averages over the tasks have
an empty task; `point` names the protocol's step (zeroshot, finetuned, tuned, one_shot,
val_curve, negated, "A+B tuned", a merging method, ...) and `alpha` the coefficient there.

    import pandas as pd
    rows = pd.read_parquet("results/ViT-B-32-openai/report/results.parquet")
    rows.query("evaluation == 'addition' and point == 'tuned' and split == 'test' and task.isna()")
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any, Mapping

from ..evaluation.registry import EVALUATIONS
from ..io import atomic_write_bytes, atomic_write_text
from .table import RunResults

COLUMNS = ("model", "run", "seed", "evaluation", "task", "split", "point", "alpha", "metric", "value")
FILES = ("results.csv", "results.parquet")


def run_seed(run: RunResults) -> int | None:
    """The fine-tuning seed of the run's task vectors, as the results recorded it (None when they
    record none, or several)."""
    seeds = {v.get("seed") for p in run.payloads.values() for v in (p.get("settings", {}).get("vectors") or {}).values()}
    return seeds.pop() if len(seeds) == 1 and isinstance(next(iter(seeds)), int) else None


def _tasks(run: RunResults) -> list[str]:
    settings = run.settings
    return [*settings.get("tasks", []), *(settings.get("data_fingerprints") or {})]


def tidy_rows(runs: Mapping[str, RunResults], model_id: str) -> list[dict[str, Any]]:
    """Every evaluation result of every run, one number per row, in the registry's order."""
    out = []
    for name, run in runs.items():
        seed = run_seed(run)
        for evaluation, spec in EVALUATIONS.items():
            result = run.results.get(evaluation)
            if result is None:
                continue
            for row in spec.tidy(result, _tasks(run)):
                out.append({"model": model_id, "run": name, "seed": seed, "evaluation": evaluation, **dataclasses.asdict(row)})
    return [{c: r[c] for c in COLUMNS} for r in out]


def csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    return buffer.getvalue()


def frame(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> Any:
    """The rows as a pandas DataFrame (typed columns: seed and alpha nullable numbers)."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(columns))
    df["seed"] = df["seed"].astype("Int64")
    df["alpha"] = df["alpha"].astype("Float64")
    df["value"] = df["value"].astype("float64")
    return df


def write_tidy(rows: list[dict[str, Any]], folder: Path, stem: str = "results", columns: tuple[str, ...] = COLUMNS) -> list[Path]:
    """<stem>.csv and <stem>.parquet in `folder`, each written whole (atomically)."""
    csv_path, parquet_path = Path(folder) / f"{stem}.csv", Path(folder) / f"{stem}.parquet"
    atomic_write_text(csv_path, csv_text(rows, columns))
    buffer = io.BytesIO()
    frame(rows, columns).to_parquet(buffer, index=False)
    atomic_write_bytes(parquet_path, buffer.getvalue())
    return [csv_path, parquet_path]
