"""Training images/s per architecture and GPU, as benchmarks/gpu_check.sh measured them.

The GPU check writes `benchmarks/results/gpu-<gpu name>.json`; its header's "calibration" holds,
per model it timed, the images/s of a plain (standard) and a linearised training step in the
precision it ran (bf16, the CUDA default). The dry run prints them as a table and turns the
study model's figures into GPU hours when no --seconds-per-image is given. Nothing here is
measured by this module: a model or GPU the check has not run on has no row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Throughput:
    gpu: str
    model: str
    precision: str
    plain: float  # training images/s of a standard step
    linearized: float  # of a linearised step (tau-Jp penalty inputs count as linearised passes too)
    date: str

    def seconds_per_image(self) -> dict[str, float]:
        return {"plain": 1 / self.plain, "linearized": 1 / self.linearized}


def measured(folder: Path = RESULTS) -> list[Throughput]:
    """Every architecture's figures from every GPU-check result in `folder` (newest file first)."""
    rows: list[Throughput] = []
    files = sorted(Path(folder).glob("gpu-*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if Path(folder).is_dir() else []
    for path in files:
        try:
            header = json.loads(path.read_text()).get("header", {})
        except (OSError, json.JSONDecodeError):
            continue  # a half-copied or foreign file is not a measurement
        for model, figures in (header.get("calibration") or {}).items():
            try:
                rows.append(Throughput(str(header.get("gpu") or path.stem), model, str(figures.get("precision", "?")),
                                       float(figures["plain"]), float(figures["linearized"]), str(header.get("date", ""))))
            except (KeyError, TypeError, ValueError):
                continue
    return rows


def seconds_per_image(model: str, folder: Path = RESULTS) -> tuple[dict[str, float], Throughput] | None:
    """The newest measurement of `model`, as the plan's seconds per image pass."""
    row = next((r for r in measured(folder) if r.model == model), None)
    return (row.seconds_per_image(), row) if row is not None else None


def format_table(folder: Path = RESULTS) -> str:
    rows = measured(folder)
    if not rows:
        return ("training images/s per architecture: none measured yet; run benchmarks/gpu_check.sh on a GPU "
                f"(it writes {folder}/gpu-<name>.json), or pass --seconds-per-image plain=S,linearized=S")
    lines = ["training images/s per architecture (benchmarks/gpu_check.sh):",
             f"  {'model':<12}{'GPU':<28}{'precision':<11}{'plain':>9}{'linearised':>12}  measured"]
    for r in rows:
        lines.append(f"  {r.model:<12}{r.gpu[:27]:<28}{r.precision:<11}{r.plain:9.0f}{r.linearized:12.0f}  {r.date[:10]}")
    return "\n".join(lines)
