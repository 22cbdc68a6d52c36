"""Tidy results, the report's provenance and caveats, and `report.py --compare` (issue 29), on
results written by the real evaluation code from a closed-form session (tests/test_report_build.py),
each user step (the report, the comparison) run as its own process."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from test_report_build import CONTROL, TASKS, FakeSession, interference, write_run

from task_arithmetic.evaluation.registry import EVALUATIONS
from task_arithmetic.evaluation.results import write_results
from task_arithmetic.evaluation.spec import Evaluation, NoParams
from task_arithmetic.paths import Layout
from task_arithmetic.reporting.build import build_report
from task_arithmetic.reporting.tidy import COLUMNS

REPO = Path(__file__).resolve().parents[1]
MODEL = "Fake-model"
EVALS = ("single_task", "addition", "negation", "pairs", "tau_jp")


class RecordedSession(FakeSession):
    """Records settings as a real session does: weights, sample cap, each vector's seed and config."""

    def __init__(self, *args, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed

    def settings(self, **extra):
        vectors = {t: {"path": f"/nowhere/{t}/finetuned.safetensors", "seed": self.seed, "steps": 15, "code_revision": "abc123",
                       "config": {"max_steps": 15, "max_train_samples": 256}} for t in TASKS}
        return {**super().settings(**extra), "model": "TinyCLIP", "pretrained": "embedded-smoke", "max_eval_samples": 64, "code_revision": "abc123",
                "evaluator": "batched", "device": "cpu", "vectors": vectors}


def write_study(root: Path, seed: int = 0) -> Layout:
    layout = Layout(root / "ck", root / "res")
    write_run(layout, "standard", RecordedSession(interference(0.15, 1 + seed), "standard", seed=seed), EVALS)
    write_run(layout, "linear-tau_jp", RecordedSession(interference(0.01, 3 + seed), "linear", "tau_jp", seed=seed), EVALS)
    return layout


def script(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_report_writes_every_number_as_a_long_format_row_with_provenance_and_caveats(tmp_path):
    layout = write_study(tmp_path)
    script("src/report.py", "--model-id", MODEL, "--results-root", str(layout.results_root))
    folder = layout.report_dir(MODEL)
    rows = pd.read_parquet(folder / "results.parquet")
    assert tuple(rows.columns) == COLUMNS
    assert len(rows) == len(list(csv.DictReader((folder / "results.csv").open())))
    assert set(rows["model"]) == {MODEL} and set(rows["seed"]) == {0} and set(rows["evaluation"]) == set(EVALS)

    def result(run: str, evaluation: str) -> dict:
        return json.loads(layout.results(MODEL, run, evaluation).read_text())["results"]

    def one(query: str) -> float:
        found = rows.query(query)
        assert len(found) == 1, (query, found)
        return float(found["value"].iloc[0])

    add = result("linear-tau_jp", "addition")
    tuned = "evaluation == 'addition' and run == 'linear-tau_jp' and point == 'tuned' and split == 'test'"
    assert one(f"{tuned} and task.isna() and metric == 'normalized_accuracy'") == add["tuned"]["test"]["avg_normalized"]
    assert one(f"{tuned} and task == 'B' and metric == 'accuracy'") == add["tuned"]["test"]["per_task"]["B"]
    assert set(rows.query(tuned)["alpha"]) == {add["tuned"]["alpha"]}
    curve = rows.query("evaluation == 'addition' and run == 'linear-tau_jp' and point == 'val_curve' and task.isna() and metric == 'accuracy'")
    assert sorted(curve["alpha"]) == add["alphas"] and sorted(curve["value"]) == sorted(p["avg_accuracy"] for p in add["val_curve"])
    matrix = result("standard", "tau_jp")
    for i, vector in enumerate(matrix["vectors"]):
        for j, dataset in enumerate(matrix["datasets"]):
            assert one(f"evaluation == 'tau_jp' and run == 'standard' and point == 'tau {vector}' and task == '{dataset}'") == matrix["matrix"][i][j]
    single = result("standard", "single_task")
    assert len(rows.query("evaluation == 'single_task' and run == 'standard'")) == len(TASKS) * (2 * 2 * 2 + 1) + 4
    assert one("evaluation == 'single_task' and run == 'standard' and point == 'finetuned' and task == 'C' and split == 'val' and metric == 'accuracy'") \
        == single["finetuned"]["C"]["val"]["accuracy"]
    negation = result("standard", "negation")
    solved = [t for t, n in negation["targets"].items() if n["test"] is not None]
    assert len(rows.query("evaluation == 'negation' and run == 'standard' and point == 'negated' and split == 'test' and task.notna()")) == 2 * len(solved)

    report = (folder / "report.md").read_text()
    head = report[: report.index("## Runs")]
    assert head.index("## Provenance") < head.index("## Data splits") < head.index("## Caveats") if "## Data splits" in head else head.index("## Provenance") < head.index("## Caveats")
    assert "seeds 0" in head and "step cap (--max-steps) 15" in head and "(--max-eval-samples) 64" in head and "abc123" in head
    for caveat in ("**Smoke run.**", "**Capped evaluation.**", "at most 64 examples", "**Capped fine-tuning.**", "**Subsampled training.**"):
        assert caveat in head, caveat
    above = rows.query("metric == 'normalized_accuracy' and split == 'test' and value > 1")
    assert ("**Normalised accuracy above 100 %.**" in report) == (len(above) > 0)
    assert "results.parquet" in report


def test_an_evaluation_without_its_own_rows_is_read_generically(tmp_path, monkeypatch):
    @dataclass(frozen=True)
    class Toy:
        SCHEMA: ClassVar[int] = 1
        per_task: dict[str, dict[str, float]]
        curve: list[dict[str, float]]
        note: str

    toy = Evaluation("toy", "a throw-away evaluation", NoParams, Toy, run=lambda s, p: None, headline=lambda r: "")
    monkeypatch.setitem(EVALUATIONS, toy.name, toy)
    layout = write_study(tmp_path)
    value = Toy({"A": {"test": 0.25, "val": 0.5}}, [{"alpha": 0.5, "score": 0.75}], "text is not a number")
    write_results(layout, MODEL, "standard", toy, NoParams(), RecordedSession(interference(0.1, 1), "standard").settings(), value)
    build_report(layout, MODEL)
    rows = pd.read_parquet(layout.report_dir(MODEL) / "results.parquet").query("evaluation == 'toy'")
    plain = lambda v: None if pd.isna(v) else v  # noqa: E731  (missing cells read back as NA)
    got = {(r.metric, plain(r.task), plain(r.split), plain(r.alpha), r.value) for r in rows.itertuples()}
    assert got == {("per_task", "A", "test", None, 0.25), ("per_task", "A", "val", None, 0.5), ("curve.score", None, None, 0.5, 0.75)}


def test_compare_tables_models_runs_and_seeds(tmp_path):
    root = tmp_path / "study"
    write_study(root)
    write_study(root / "res" / "seeds" / "seed-1", seed=1)  # a replicate, where the study keeps it
    shutil.move(str(root / "res" / "seeds" / "seed-1" / "res" / MODEL), str(root / "res" / "seeds" / "seed-1" / MODEL))
    other = tmp_path / "other"
    write_study(other)
    shutil.move(str(other / "res" / MODEL), str(other / "res" / "Other-model"))
    done = script("src/report.py", "--compare", str(root / "res"), str(other / "res" / "Other-model"), "--out", str(tmp_path / "out"))
    assert "| evaluation | point | metric | Fake-model/standard | Fake-model/linear-tau_jp | Other-model/standard | Other-model/linear-tau_jp |" in done.stdout
    pooled = pd.read_parquet(tmp_path / "out" / "compare.parquet")
    assert set(pooled["seed"]) == {0, 1} and set(pooled["model"]) == {MODEL, "Other-model"}
    key = "evaluation == 'addition' and point == 'tuned' and split == 'test' and task.isna() and metric == 'normalized_accuracy' and run == 'standard'"
    values = pooled.query(f"{key} and model == '{MODEL}'")["value"].tolist()
    assert len(values) == 2
    mean, sd = sum(values) / 2, math.sqrt(sum((v - sum(values) / 2) ** 2 for v in values))
    row = next(line for line in (tmp_path / "out" / "compare.md").read_text().splitlines() if line.startswith("| addition | tuned | normalized_accuracy |"))
    assert row.split("|")[4].strip() == f"{100 * mean:.1f} ± {100 * sd:.1f} (n=2)"
    assert (tmp_path / "out" / "compare.csv").is_file()


@pytest.mark.parametrize("argv, message", [(["--compare", "nowhere"], "not a folder"), (["--out", "x"], "--out goes with --compare")])
def test_compare_errors_are_one_line(tmp_path, argv, message):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "src/report.py", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and message in done.stderr and "Traceback" not in done.stderr
    assert CONTROL  # the fake world's control task exists (negation reads it)
