"""Read every results/<model_id>/<run>/<evaluation>.json that exists."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..evaluation.registry import EVALUATIONS
from ..io import read_json
from .table import RunResults

__all__ = ["RUN_ORDER", "RunResults", "collect"]  # RunResults lives in table.py, a leaf the evaluations import

# How runs are ordered in tables: the paper's order first, anything else after, by name.
RUN_ORDER = ("standard", "posthoc", "linear", "linear-tau_jp", "standard-tau_jp", "standard-l2_sp", "attn_only", "talos")


def _run_key(name: str) -> tuple[int, str]:
    return (RUN_ORDER.index(name), name) if name in RUN_ORDER else (len(RUN_ORDER), name)


def collect(results_root: Path, model_id: str) -> dict[str, RunResults]:
    folder = Path(results_root) / model_id
    if not folder.is_dir():
        raise UserError(f"no results for {model_id} under {results_root}; run the scripts/eval_*.sh evaluations first")
    runs: dict[str, RunResults] = {}
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "report"):
        found = RunResults(run_dir.name)
        for evaluation in EVALUATIONS:
            path = run_dir / f"{evaluation}.json"
            if path.is_file():
                payload = read_json(path)
                found.evaluations[evaluation] = payload
                found.settings = found.settings or payload.get("settings", {})
        if found.evaluations:
            runs[run_dir.name] = found
    if not runs:
        raise UserError(f"{folder} holds no evaluation results; run the scripts/eval_*.sh evaluations first")
    return dict(sorted(runs.items(), key=lambda item: _run_key(item[0])))
