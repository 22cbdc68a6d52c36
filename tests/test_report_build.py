"""Report tables, plots and claims from results produced by the real evaluation code on a fake,
analytic session (accuracies given by formulas, so every claim's outcome is known in advance)."""

import csv
import itertools
import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from task_arithmetic.evaluation.accuracy import Metrics
from task_arithmetic.evaluation.addition import evaluate_addition
from task_arithmetic.evaluation.edits import Edit
from task_arithmetic.evaluation.negation import evaluate_negation
from task_arithmetic.evaluation.pairs import evaluate_pairs
from task_arithmetic.evaluation.registry import EVALUATIONS
from task_arithmetic.evaluation.results import write_results
from task_arithmetic.evaluation.single_task import evaluate_single_task
from task_arithmetic.evaluation.spec import Evaluation, NoParams
from task_arithmetic.evaluation.tau_jp import evaluate_tau_jp
from task_arithmetic.paths import Layout
from task_arithmetic.recipes import EvaluatedRun
from task_arithmetic.reporting.analyses import all_claims
from task_arithmetic.reporting.build import build_report
from task_arithmetic.reporting.claims import FAILS, HOLDS, MISSING
from task_arithmetic.reporting.collect import RunResults, collect
from task_arithmetic.reporting.table import Table, describe, pct_cell
from task_arithmetic.typed_json import dump

TASKS = ["A", "B", "C", "D"]
CONTROL = "Ctl"
ZS = {"A": 0.5, "B": 0.4, "C": 0.6, "D": 0.3, CONTROL: 0.7}
FT = {"A": 0.95, "B": 0.9, "C": 0.97, "D": 0.85}


class FakeSession:
    """acc(d) = zs + (ft - zs) * c_d - 3 * sum_{t != d} K[t][d] * c_t^2, clipped to [0, 1].

    Gain linear and interference quadratic in the coefficients: strong interference puts the
    best addition alpha inside the grid, weak interference at alpha = 1.
    """

    def __init__(self, interference: np.ndarray, mode: str, reg: str = "none", tau_jp_sign: float = 1.0):
        self.tasks = list(TASKS)
        self.K = interference  # rows: vector t, columns: datasets TASKS + [CONTROL]
        self.mode, self.reg, self.sign = mode, reg, tau_jp_sign
        self.columns = [*TASKS, CONTROL]

    def prefetch(self, queries) -> None:
        """The protocols announce their points in advance; a closed-form session needs no batching."""

    def accuracy(self, edit: Edit, dataset: str, split: str) -> float:
        coefs = edit.per_task()
        acc = ZS[dataset]
        own = coefs.get(dataset, 0.0)
        if own > 0:
            acc += (FT[dataset] - ZS[dataset]) * min(own, 1.0)
        elif own < 0:
            acc *= 1 - 0.9 * min(-own, 1.0)
        j = self.columns.index(dataset)
        acc -= 3 * sum(self.K[TASKS.index(t)][j] * c * c for t, c in coefs.items() if t != dataset)
        return min(max(acc - (0.001 if split == "test" else 0.0), 0.0), 1.0)

    def metrics(self, edit, dataset, split):
        return Metrics(self.accuracy(edit, dataset, split), 0.0, 100)

    def finetuned_accuracy(self, task, split):
        return self.accuracy(Edit.scaled([task], 1.0), task, split)

    def tangent_norm_mean(self, task, dataset, split):
        i, j = TASKS.index(task), self.columns.index(dataset)
        return 5.0 if task == dataset else (10.0 * self.K[i][j] if self.sign > 0 else 1.0 / (1e-3 + self.K[i][j]))

    def relative_norms(self):
        return {t: 0.02 * (i + 1) for i, t in enumerate(TASKS)}

    def settings(self, **extra):
        return {"mode": self.mode, "reg": self.reg, "tasks": self.tasks, **extra}


def interference(scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = scale * rng.uniform(0.2, 1.0, size=(len(TASKS), len(TASKS) + 1))
    np.fill_diagonal(k, 0.0)
    return k


def write_run(layout, run, session, evaluations=("single_task", "addition", "negation", "pairs", "tau_jp")):
    runners = {
        "single_task": lambda: evaluate_single_task(session),
        "addition": lambda: evaluate_addition(session),
        "negation": lambda: evaluate_negation(session, CONTROL),
        "pairs": lambda: evaluate_pairs(session),
        "tau_jp": lambda: evaluate_tau_jp(session, [*TASKS, CONTROL]),
    }
    for evaluation in evaluations:
        spec = EVALUATIONS[evaluation]
        write_results(layout, "Fake-model", run, spec, spec.params_from({}), session.settings(), runners[evaluation]())


def results(run, evaluation):
    """A run's results of one evaluation as the JSON they are written as (None if absent)."""
    found = run.results.get(evaluation)
    return None if found is None else dump(found)


def label(name):
    return describe(name, EvaluatedRun.parse(name))


@pytest.fixture
def layout(tmp_path):
    return Layout(tmp_path / "ck", tmp_path / "res")


def spearman(x, y):
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731  (no ties in these numbers)
    rx, ry = rank(np.array(x)), rank(np.array(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def test_claims_hold_when_the_numbers_say_so(layout):
    write_run(layout, "standard", FakeSession(interference(0.15, 1), "standard", tau_jp_sign=-1.0))
    write_run(layout, "linear", FakeSession(interference(0.05, 2), "linear"))
    write_run(layout, "linear-tau_jp", FakeSession(interference(0.01, 3), "linear", "tau_jp"))
    runs = collect(layout.results_root, "Fake-model")
    assert list(runs) == ["standard", "linear", "linear-tau_jp"]
    claims = {(c.claim[:12], c.scope): c for c in all_claims(runs)}
    add = {name: results(runs[name], "addition") for name in runs}

    for block, measure in itertools.product(("tuned", "one_shot"), ("avg_accuracy", "avg_normalized")):
        claim = next(c for (k, scope), c in claims.items() if scope.startswith(f"addition, {block.replace('_', '-')} alpha") and
                     ("absolute" in scope) == (measure == "avg_accuracy"))
        values = [add[n][block]["test"][measure] for n in ("linear-tau_jp", "linear", "standard")]
        assert claim.verdict == (HOLDS if values[0] >= values[1] >= values[2] else FAILS)
        assert claim.numbers["τJp"] == values[0]
    assert all(c.verdict == HOLDS for c in claims.values() if c.scope.startswith("addition, "))

    one_shot = next(c for c in claims.values() if c.scope == "addition, linear-tau_jp")
    gap = add["linear-tau_jp"]["tuned"]["test"]["avg_accuracy"] - add["linear-tau_jp"]["one_shot"]["test"]["avg_accuracy"]
    assert one_shot.verdict == (HOLDS if abs(gap) <= 0.01 else FAILS) == HOLDS

    negation = next(c for c in claims.values() if c.scope == "negation")
    neg = {n: results(runs[n], "negation")["average"] for n in runs}
    assert neg["linear-tau_jp"]["target_test"] < min(neg["linear"]["target_test"], neg["standard"]["target_test"])
    assert negation.verdict == HOLDS

    correlations = {c.scope: c for c in claims.values() if c.scope.startswith("pairs of")}
    for run, expected in (("linear-tau_jp", HOLDS), ("standard", FAILS)):
        r = runs[run]
        m, pairs = results(r, "tau_jp")["matrix"], results(r, "pairs")["pairs"]
        xs = [0.5 * (m[TASKS.index(a)][TASKS.index(b)] + m[TASKS.index(b)][TASKS.index(a)]) for a, b in (p["tasks"] for p in pairs.values())]
        ys = [1 - p["one_shot"]["test"]["avg_normalized"] for p in pairs.values()]
        claim = correlations[f"pairs of {run}"]
        assert claim.numbers["rho"] == pytest.approx(spearman(xs, ys), abs=1e-9)
        assert claim.verdict == expected
    assert "pairs of all runs pooled" in correlations


def test_ordering_fails_when_standard_beats_linear_and_missing_runs_are_named(layout):
    write_run(layout, "standard", FakeSession(interference(0.02, 1), "standard"), ("addition",))
    write_run(layout, "linear", FakeSession(interference(0.10, 2), "linear"), ("addition",))
    write_run(layout, "linear-tau_jp", FakeSession(interference(0.01, 3), "linear", "tau_jp"), ("addition",))
    claims = all_claims(collect(layout.results_root, "Fake-model"))
    tuned_abs = next(c for c in claims if c.scope == "addition, tuned alpha, absolute")
    assert tuned_abs.numbers["standard"] > tuned_abs.numbers["linear"] and tuned_abs.verdict == FAILS
    assert next(c for c in claims if c.scope == "negation").verdict == MISSING
    assert [c.verdict for c in claims if c.scope == "pairs"] == [MISSING]


def test_report_files_tables_and_plots(layout):
    write_run(layout, "standard", FakeSession(interference(0.15, 1), "standard"))
    write_run(layout, "linear-tau_jp", FakeSession(interference(0.01, 3), "linear", "tau_jp"))
    written = build_report(layout, "Fake-model")
    folder = layout.report_dir("Fake-model")
    names = {p.name for p in written}
    assert {"report.md", "claims.json", "addition.csv", "negation.csv", "single_task.csv", "pairs.csv",
            "tau_jp_standard.csv", "addition_alpha.png", "addition_per_task.png", "tau_jp_linear-tau_jp.png"} <= names
    for png in folder.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    rows = list(csv.DictReader((folder / "addition.csv").open()))
    result = json.loads((layout.results("Fake-model", "linear-tau_jp", "addition")).read_text())["results"]
    tuned = next(r for r in rows if r["method"].startswith("linear-tau_jp") and r["method"].endswith("tuned"))
    assert float(tuned["abs avg"]) == pytest.approx(100 * result["tuned"]["test"]["avg_accuracy"], abs=0.01)
    assert float(tuned["B"]) == pytest.approx(100 * result["tuned"]["test"]["per_task"]["B"], abs=0.01)
    assert rows[0]["method"] == "zero-shot" and len(rows) == 1 + 2 * 2
    report = (folder / "report.md").read_text()
    assert "## Claims" in report and "| zero-shot |" in report and "![addition_alpha](addition_alpha.png)" in report
    sizes = {r["model"]: r for r in csv.DictReader((folder / "task_vector_norms.csv").open())}
    assert float(sizes[label("standard")]["D"]) == pytest.approx(8.0) and float(sizes[label("standard")]["min"]) == pytest.approx(2.0)
    claims = json.loads((folder / "claims.json").read_text())
    assert {c["verdict"] for c in claims} <= {HOLDS, FAILS, MISSING} and any(c["verdict"] == MISSING for c in claims)


def test_a_new_evaluation_brings_its_own_report_table(layout, monkeypatch):
    """An evaluation with a table is its module plus one registry entry: reporting/ names no evaluation."""

    @dataclass(frozen=True)
    class ToyResult:
        SCHEMA: ClassVar[int] = 1
        score: float

    def toy_report(runs: dict[str, RunResults]) -> list[Table]:
        table = Table("toy", "Toy score (test %)", ["method", "score"])
        table.rows += [[run.label, pct_cell(r.score)] for run in runs.values() if (r := run.get(toy)) is not None]
        return [table] if table.rows else []

    toy = Evaluation("toy", "a throw-away evaluation", NoParams, ToyResult, run=lambda session, params: ToyResult(0.4321),
                     headline=lambda r: f"score {r.score}", report=toy_report)
    monkeypatch.setitem(EVALUATIONS, toy.name, toy)  # the one registration line (undone after the test)
    session = FakeSession(interference(0.15, 1), "standard")
    write_run(layout, "standard", session, ("single_task",))
    write_results(layout, "Fake-model", "standard", toy, NoParams(), session.settings(), ToyResult(0.4321))
    written = build_report(layout, "Fake-model")
    folder = layout.report_dir("Fake-model")
    assert {folder / "toy.csv", folder / "single_task.csv"} <= set(written)
    assert list(csv.reader((folder / "toy.csv").open())) == [["method", "score"], [label("standard"), "43.21"]]
    report = (folder / "report.md").read_text()
    assert "- standard: single_task, toy" in report  # collected from the registry too
    toy_block = f"### Toy score (test %)\n\n| method | score |\n|---|---|\n| {label('standard')} | 43.2 |\n\nCSV: `toy.csv`"
    assert toy_block in report
    assert report.index("### Single-task accuracy") < report.index(toy_block)  # the registry's order
