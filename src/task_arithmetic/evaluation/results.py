"""One results layout: results/<model_id>/<run>/<evaluation>.json, each carrying its settings.

Every results file records the evaluation's schema version and its key: the settings that
determine its numbers (the evaluation's parameters resolved for the tasks, the tasks, the
evaluation-set cap) and the digests of the weights it read (theta_0 and each task's fine-tuned
run, as recorded beside them). `freshness` compares a file with the key a new evaluation would
have: the same settings and inputs mean the file is current; other inputs (a run trained again)
or another schema mean it is stale; other settings mean it answers another question, which
src/evaluate.py refuses to replace without --force and the study recomputes, saying so.
Operational choices (device, batch size, cached or direct evaluator) are not in the key: they
leave the numbers as they are.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import typed_json
from ..io import atomic_write_json, metadata_path, read_json_object
from ..paths import Layout
from ..storage.checksums import DIGEST_KEY
from ..storage.locks import FileLock
from ..wandb_logging import WandbSettings, log_evaluation
from .spec import Evaluation

KEY_FIELD = "key"


def results_lock(path: Path) -> FileLock:
    """One evaluation at a time writes a results file: a second one stops with the holder's name."""
    return FileLock(path.with_name(path.name + ".lock"), what=f"results file {path}")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def input_digests(weight_files: Sequence[Path]) -> dict[str, str | None]:
    """Each weights file's sha256 as recorded beside it (None where nothing is recorded)."""
    out: dict[str, str | None] = {}
    for path in weight_files:
        meta_file = metadata_path(Path(path))
        recorded = read_json_object(meta_file).get(DIGEST_KEY) if meta_file.is_file() else None
        out[str(path)] = recorded if isinstance(recorded, str) else None
    return out


@dataclass(frozen=True)
class ResultsKey:
    settings: dict[str, Any]
    inputs: dict[str, str | None] = field(default_factory=dict)  # weights file -> recorded sha256

    @property
    def settings_digest(self) -> str:
        return _digest(self.settings)

    @property
    def inputs_digest(self) -> str:
        return _digest(sorted(v or k for k, v in self.inputs.items()))  # by content; a moved root stays current

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "settings_digest": self.settings_digest, "inputs": self.inputs, "inputs_digest": self.inputs_digest}


def results_key(
    evaluation: Evaluation[Any, Any], params: Any, tasks: Sequence[str], max_eval_samples: int | None, weight_files: Sequence[Path],
    precision: str = "fp32",
) -> ResultsKey:
    """`params` resolved for the tasks (Evaluation.resolved): the same key from src/evaluate.py and the
    study. The precision the forward passes ran in is part of it (bf16 numbers are not fp32's)."""
    settings = {"evaluation": evaluation.name, "tasks": list(tasks), "max_eval_samples": max_eval_samples, **typed_json.dump(params)}
    if precision != "fp32":  # keys written before the setting existed were fp32 and stay fresh
        settings["precision"] = precision
    return ResultsKey(settings, input_digests(weight_files))


@dataclass(frozen=True)
class Freshness:
    status: str  # "fresh", "missing", "stale" (other inputs, another schema, or no key recorded), "other_settings"
    detail: str = ""

    @property
    def fresh(self) -> bool:
        return self.status == "fresh"


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3]) + (" ..." if len(changed) > 3 else "")


def freshness(path: Path, evaluation: Evaluation[Any, Any], key: ResultsKey) -> Freshness:
    """Whether the results file at `path` is what an evaluation with `key` would write now."""
    path = Path(path)
    if not path.is_file():
        return Freshness("missing")
    try:
        payload = json.loads(path.read_text())
        recorded = payload.get(KEY_FIELD)
    except (OSError, ValueError, AttributeError):
        return Freshness("stale", "the file is unreadable")
    if payload.get("schema_version") != evaluation.schema:
        return Freshness("stale", f"written by another version (schema {payload.get('schema_version', 1)}, now {evaluation.schema})")
    if not isinstance(recorded, dict) or "settings_digest" not in recorded:
        return Freshness("stale", "it records no settings key (written by an older version)")
    if recorded["settings_digest"] != key.settings_digest:
        settings = recorded.get("settings")
        old = settings if isinstance(settings, dict) else {}
        return Freshness("other_settings", _changes(old, key.settings))
    if recorded.get("inputs_digest") != key.inputs_digest:
        return Freshness("stale", "the weights it read have changed since")
    return Freshness("fresh")


def write_results(layout: Layout, model_id: str, run: str, evaluation: Evaluation[Any, Any], params: Any, settings: Mapping[str, Any], result: Any,
                  key: ResultsKey | None = None) -> Path:
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
    if key is not None:
        payload[KEY_FIELD] = key.to_json()
    atomic_write_json(path, payload)
    return path


def log_to_wandb(settings: WandbSettings, evaluation: Evaluation[Any, Any], model_id: str, run: str, result: Any, tasks: Sequence[str], path: Path) -> None:
    """The results just written to `path`, logged to W&B when it is on: the headline numbers as
    summary metrics, every number (the evaluation's tidy rows) as a table."""
    if settings.on:
        config = {"model_id": model_id, "run": run, "evaluation": evaluation.name, "tasks": list(tasks), "results_file": str(path)}
        log_evaluation(settings, f"{model_id}/{run}/{evaluation.name}", config, evaluation.headline(result), evaluation.tidy(result, tasks), path.parent)
