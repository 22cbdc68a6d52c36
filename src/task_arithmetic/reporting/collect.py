"""Read every results/<model_id>/<run>/<evaluation>.json that exists, typed by its evaluation."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..evaluation.registry import EVALUATIONS
from ..io import read_json
from ..recipes.identity import try_parse
from ..recipes.registry import RECIPES
from .table import RunResults

__all__ = ["RunResults", "collect", "run_order"]


def run_order() -> tuple[str, ...]:
    """How runs are ordered in tables: the registered recipes' order, anything else after, by name."""
    return tuple(dict.fromkeys(r.evaluated.name for r in RECIPES.values()))


def _run_key(name: str) -> tuple[int, str]:
    order = run_order()
    return (order.index(name), name) if name in order else (len(order), name)


def collect(results_root: Path, model_id: str, stale: list[str] | None = None) -> dict[str, RunResults]:
    """Every run's results; files of another schema version are left out (and named in `stale`)."""
    folder = Path(results_root) / model_id
    if not folder.is_dir():
        raise UserError(f"no results for {model_id} under {results_root}; run the scripts/eval_*.sh evaluations first")
    runs: dict[str, RunResults] = {}
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "report"):
        found = RunResults(run_dir.name, try_parse(run_dir.name))
        for name, evaluation in EVALUATIONS.items():
            path = run_dir / f"{name}.json"
            if not path.is_file():
                continue
            payload = read_json(path)
            if payload.get("schema_version") != evaluation.schema:
                if stale is not None:
                    stale.append(f"{run_dir.name}/{name}.json (schema {payload.get('schema_version', 1)}, this version reads {evaluation.schema})")
                continue
            found.results[name] = evaluation.load_result(payload["results"])
            found.payloads[name] = {k: v for k, v in payload.items() if k != "results"}
        if found.results:
            runs[run_dir.name] = found
    if not runs:
        raise UserError(f"{folder} holds no evaluation results this version can read; run the scripts/eval_*.sh evaluations first")
    return dict(sorted(runs.items(), key=lambda item: _run_key(item[0])))
