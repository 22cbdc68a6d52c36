"""One results layout: results/<model_id>/<run>/<evaluation>.json, each carrying its settings."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Mapping

from ..io import atomic_write_json
from ..paths import Layout
from ..storage.locks import FileLock


def results_lock(path: Path) -> FileLock:
    """One evaluation at a time writes a results file: a second one stops with the holder's name."""
    return FileLock(path.with_name(path.name + ".lock"), what=f"results file {path}")


def write_results(layout: Layout, model_id: str, run: str, evaluation: str, settings: Mapping[str, Any], results: Mapping[str, Any]) -> Path:
    path = layout.results(model_id, run, evaluation)
    payload = {
        "evaluation": evaluation,
        "model_id": model_id,
        "run": run,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(settings),
        "results": dict(results),
    }
    atomic_write_json(path, payload)
    return path
