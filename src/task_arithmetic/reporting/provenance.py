"""The report's "Data splits" section: which copy of each task, and which examples its train, Val and
test parts held (data/fingerprints.py), as every result file and fine-tuned model recorded them.

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
