"""The report's provenance block: the code, model, fine-tuning and evaluation settings the numbers
were made with, and its "Data splits" section: which copy of each task, and which examples its
train, Val and test parts held (data/fingerprints.py), as every result file and fine-tuned model
recorded them.

A task whose fingerprints differ between runs, or between a run's fine-tuning and its evaluation,
is named in a warning line: those numbers were measured on different data and do not compare.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..data.fingerprints import PARTS
from .table import RunResults


def _signature(entry: dict[str, Any]) -> tuple:
    if "unavailable" in entry:
        return ("unavailable",)
    return tuple(entry[part]["fingerprint"] for part in PARTS if part in entry)


def _cell(entry: dict[str, Any], part: str) -> str:
    return f"{entry[part]['fingerprint'][:8]} ({entry[part]['n']})" if part in entry else "–"


def provenance_lines(runs: Mapping[str, RunResults]) -> list[str]:
    seen: dict[str, dict[tuple, tuple[dict, list[str]]]] = {}  # task -> signature -> (entry, where)
    for name, run in runs.items():
        for evaluation, payload in run.payloads.items():
            settings = payload.get("settings", {})
            for task, entry in (settings.get("data_fingerprints") or {}).items():
                seen.setdefault(task, {}).setdefault(_signature(entry), (entry, []))[1].append(f"{name}/{evaluation}")
            for task, vector in (settings.get("vectors") or {}).items():
                trained = (vector.get("data_fingerprints") or {}).get(task)
                if trained is not None:
                    seen.setdefault(task, {}).setdefault(_signature(trained), (trained, []))[1].append(f"{name} fine-tuning")
    if not seen:
        return []
    lines = ["## Data splits", "", "| task | copy read | train | Val | test |", "|---|---|---|---|---|"]
    warnings = []
    for task, variants in seen.items():
        for entry, _where in variants.values():
            if "unavailable" in entry:
                lines.append(f"| {task} | unavailable: {entry['unavailable'].split(';')[0]} | – | – | – |")
            else:
                lines.append(f"| {task} | {entry.get('source', '?')} | {_cell(entry, 'train')} | {_cell(entry, 'val')} | {_cell(entry, 'test')} |")
        if len(variants) > 1:
            groups = "; ".join(", ".join(sorted(set(where))) for _entry, where in variants.values())
            warnings.append(f"- **{task} was read with different splits** (groups: {groups}): numbers across these groups do not compare.")
    lines += ["", "Fingerprints: the first 8 hex digits of each part's digest (data/fingerprints.py), with its number of examples.", ""]
    return lines + (warnings + [""] if warnings else [])


def _values(runs: Mapping[str, RunResults], key: str) -> list[Any]:
    """Every value the results' settings record under `key` (once each, in order)."""
    return list(dict.fromkeys(p.get("settings", {}).get(key) for run in runs.values() for p in run.payloads.values()))


def _vector_values(runs: Mapping[str, RunResults], key: str, config: bool = False) -> list[Any]:
    """Every value the fine-tuned runs (as the results read them) record under `key` (in their config)."""
    found = []
    for run in runs.values():
        for payload in run.payloads.values():
            for vector in (payload.get("settings", {}).get("vectors") or {}).values():
                found.append((vector.get("config") or {}).get(key) if config else vector.get(key))
    return list(dict.fromkeys(v for v in found if v is not None))


def _listed(values: list[Any], none: str = "not recorded") -> str:
    shown = [str(v) for v in values if v is not None]
    return ", ".join(shown) if shown else none


def _span(values: list[Any]) -> str:
    numbers = sorted(v for v in values if isinstance(v, (int, float)))
    if not numbers:
        return "not recorded"
    return f"{numbers[0]:g}" if numbers[0] == numbers[-1] else f"{numbers[0]:g}–{numbers[-1]:g}"


def provenance_block(runs: Mapping[str, RunResults], model_id: str) -> list[str]:
    """What the numbers were made from, as the results files recorded it: the code, the model and
    weights, the fine-tuning (seeds, steps, caps, precision), the evaluations' settings and sample
    caps, then which data each task's parts held (provenance_lines)."""
    created = sorted(v for run in runs.values() for p in run.payloads.values() if isinstance(v := p.get("created"), str))
    eval_caps = _values(runs, "max_eval_samples")
    lines = [
        "## Provenance",
        "",
        f"- Model: {model_id} (architecture {_listed(_values(runs, 'model'))}, weights {_listed(_values(runs, 'pretrained'), 'random')}).",
        f"- Code revision: evaluations {_listed(_values(runs, 'code_revision'))}; fine-tuning {_listed(_vector_values(runs, 'code_revision'))}.",
        f"- Fine-tuning: seeds {_listed(_vector_values(runs, 'seed'))}; optimiser steps per task {_span(_vector_values(runs, 'steps'))}; "
        f"step cap (--max-steps) {_listed(_vector_values(runs, 'max_steps', config=True), 'none')}; "
        f"train-sample cap (--max-train-samples) {_listed(_vector_values(runs, 'max_train_samples', config=True), 'none')}; "
        f"precision {_listed(_vector_values(runs, 'precision', config=True) + _values(runs, 'precision'))}.",
        f"- Evaluation: sample cap per Val/test set (--max-eval-samples) {_listed(eval_caps, 'none (full sets)')}; "
        f"evaluator {_listed(_values(runs, 'evaluator'))}; device {_listed(_values(runs, 'device'))}.",
        f"- Results written {created[0][:19]} to {created[-1][:19]} (UTC)." if created else "- Results written: not recorded.",
        "",
    ]
    return lines + provenance_lines(runs)
