"""The GPU check's results: one JSON and one Markdown table of every figure, rewritten after each
step so that a run stopped half-way still leaves what it measured."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    name: str
    value: Any
    unit: str = ""
    note: str = ""


@dataclass
class StepRecord:
    step: str
    title: str
    status: str = "not run"  # ok | failed | skipped | not run
    seconds: float = 0.0
    message: str = ""
    figures: list[Figure] = field(default_factory=list)

    def add(self, name: str, value: Any, unit: str = "", note: str = "") -> None:
        self.figures.append(Figure(name, value, unit, note))


def results_name(gpu_name: str | None, quick: bool) -> str:
    """gpu-<gpu name> (lower case, dashes), or cpu-quick for the CPU dry run."""
    if quick or not gpu_name:
        return "cpu-quick" if quick else "cpu"
    return "gpu-" + re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "/")


def markdown(header: dict[str, Any], records: list[StepRecord]) -> str:
    lines = [f"# GPU check: {header.get('gpu') or header.get('device')}", ""]
    for key in ("date", "command", "device", "gpu", "torch", "cuda", "code_revision", "total_seconds"):
        if key in header:
            lines.append(f"- {key.replace('_', ' ')}: `{header[key]}`")
    lines += ["", "| step | figure | value | unit | note |", "|---|---|---|---|---|"]
    for record in records:
        status = f"**{record.status}** in {record.seconds:.0f} s" + (f": {record.message}" if record.message else "")
        lines.append(f"| {record.title} | status | {_cell(status)} | | |")
        for fig in record.figures:
            lines.append(f"| {record.title} | {_cell(fig.name)} | {_cell(fig.value)} | {fig.unit} | {_cell(fig.note)} |")
    return "\n".join(lines) + "\n"


def write(folder: Path, name: str, header: dict[str, Any], records: list[StepRecord]) -> tuple[Path, Path]:
    """Write <name>.json and <name>.md atomically (a rename), so a kill never leaves half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"{name}.json", folder / f"{name}.md"
    texts = json.dumps({"header": header, "steps": [asdict(r) for r in records]}, indent=1) + "\n", markdown(header, records)
    for path, text in zip(paths, texts):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths
