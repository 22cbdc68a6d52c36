"""One results layout: results/<model_id>/<run>/<evaluation>.json, each carrying its settings.

A results file records the evaluation's schema version and the parameters that made it, so a
reader can tell a stale file (another schema, other parameters) from a fresh one
(`read_results`, `is_fresh`): the study recomputes stale results, the report skips them.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Mapping

from .. import typed_json
from ..io import atomic_write_json, read_json
from ..paths import Layout
from ..storage.locks import FileLock
from .spec import Evaluation


def results_lock(path: Path) -> FileLock:
    """One evaluation at a time writes a results file: a second one stops with the holder's name."""
    return FileLock(path.with_name(path.name + ".lock"), what=f"results file {path}")


def write_results(layout: Layout, model_id: str, run: str, evaluation: Evaluation[Any, Any], params: Any, settings: Mapping[str, Any], result: Any) -> Path:
    path = layout.results(model_id, run, evaluation.name)
    payload = {
        "evaluation": evaluation.name,
        "schema_version": evaluation.schema,
        "model_id": model_id,
        "run": run,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "params": typed_json.dump(params),
        "settings": dict(settings),
        "results": typed_json.dump(result),
    }
    atomic_write_json(path, payload)
    return path


def is_fresh(path: Path, evaluation: Evaluation[Any, Any], params: Any, newest_input: float) -> bool:
    """The file exists, is newer than every input, and was made by this schema with these parameters."""
    if not path.is_file() or path.stat().st_mtime < newest_input:
        return False
    try:
        payload = read_json(path)
    except Exception:  # a damaged file is simply not fresh: it is recomputed
        return False
    return payload.get("schema_version") == evaluation.schema and payload.get("params") == typed_json.dump(params)
