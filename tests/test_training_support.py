"""Toy tensor tasks for the training tests (no test functions here).

Imported by the training tests, and loaded by subprocesses through
`TA_EXTRA_TASKS=tests/test_training_support.py` (src/finetune.py calls register_tasks()).
Benchmark "train_toy": TrainToyA, TrainToyB, TrainToyC and the control TrainToyCtl.
Benchmark "train_toy_nan": TrainToyNaN, whose training inputs contain NaN from index NAN_FROM on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from task_arithmetic.data.registry import TaskSpec, register_task

REPO = Path(__file__).resolve().parents[1]
SUPPORT_FILE = Path(__file__).resolve()
TOY_DEFAULTS = {"epochs": 2, "lr": 1e-3, "lr_linear": 2e-3, "warmup": 2, "batch_size": 16}
N_CLASSES = 4
N_TRAIN, N_TEST = 72, 16
NAN_FROM = 69


def _toy_split(seed: int, nan_from: int | None = None):
    def load(data_location: Path, split: str, transform=None) -> TensorDataset:
        g = torch.Generator().manual_seed(seed)
        patterns = torch.randn(N_CLASSES, 3, 32, 32, generator=g)
        n = N_TRAIN if split == "train" else N_TEST
        g_split = torch.Generator().manual_seed(seed * 10 + (split == "train"))
        labels = torch.randint(0, N_CLASSES, (n,), generator=g_split)
        images = 0.7 * patterns[labels] + torch.randn(n, 3, 32, 32, generator=g_split)
        if nan_from is not None and split == "train":
            images[nan_from:] = float("nan")
        return TensorDataset(images, labels)

    return load


def _classnames(prefix: str):
    return lambda data_location: [f"{prefix} {i}" for i in range(N_CLASSES)]


def register_tasks() -> None:
    for i, name in enumerate(["TrainToyA", "TrainToyB", "TrainToyC", "TrainToyCtl"]):
        register_task(TaskSpec(
            name=name, benchmark="train_toy", templates=("a photo of a {}.", "a {}."), load_split=_toy_split(100 + i),
            load_classnames=_classnames(name.lower()), expected_layout="generated in memory", is_control=name == "TrainToyCtl",
            tensor_native=True, defaults=dict(TOY_DEFAULTS),
        ))
    register_task(TaskSpec(
        name="TrainToyNaN", benchmark="train_toy_nan", templates=("a {}.",), load_split=_toy_split(200, nan_from=NAN_FROM),
        load_classnames=_classnames("nan"), expected_layout="generated in memory", tensor_native=True, defaults=dict(TOY_DEFAULTS),
    ))


def finetune_command(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "src" / "finetune.py"), "--model", "TinyCLIP", "--pretrained", "none", "--device", "cpu", "--no-progress", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TA_EXTRA_TASKS": str(SUPPORT_FILE), "OMP_NUM_THREADS": "1", **extra}
    return env


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(finetune_command(*args), cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def assert_same_report(expected: Path, got: Path, tables: list[str]) -> None:
    """Two report folders of the same study hold the same tables, claims and text, except what
    records the runs themselves: the cost table (measured seconds and memory) and when the results
    were written. The tidy results (every number at full float32 precision) agree to 1e-6: the
    tangent cache stacks the JVPs an evaluation asks for together, and which evaluation asks first
    depends on the executor's order, which moves the last bits of a float32 sum (the tables, rounded,
    are equal)."""
    assert "cost.csv" in tables
    for name in [*(t for t in tables if t not in ("cost.csv", "results.csv")), "claims.json"]:
        assert (got / name).read_text() == (expected / name).read_text(), name
    assert _stable((got / "report.md").read_text()) == _stable((expected / "report.md").read_text())
    import pandas as pd

    a, b = pd.read_csv(expected / "results.csv"), pd.read_csv(got / "results.csv")
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, atol=0.0)


def _stable(report: str) -> str:
    """report.md without the cost table's block (its title line to its CSV line) and the time the
    results were written."""
    start = report.rindex("\n", 0, report.index("Training cost per recipe"))
    report = report[:start] + report[report.index("CSV: `cost.csv`", start):]
    return "\n".join(line for line in report.splitlines() if not line.startswith("- Results written"))
