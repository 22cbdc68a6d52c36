"""The tau-Jp paper's further experiments as study recipes, evaluations and analyses: incremental
tau-Jp, tau-Jp from fine-tuned models, the sensitivity sweep, the tau-Jp intervention and the cost
per recipe; on the smoke study with every recipe group (tests/conftest.py, smoke_all), its Slurm plan and by their definitions."""

import json
import re

import pytest
from scipy.stats import mannwhitneyu

from run_study import main as run_study_main
from task_arithmetic.evaluation.addition import Chosen, Scores
from task_arithmetic.evaluation.pairs import PairResult, PairsResult
from task_arithmetic.evaluation.tau_jp import TauJpResult
from task_arithmetic.pipeline.study import embedded_study
from task_arithmetic.recipes import EvaluatedRun, Group, recipe, recipes_in
from task_arithmetic.recipes.tau_jp import pairing
from task_arithmetic.reporting.analyses import intervention
from task_arithmetic.reporting.table import RunResults

MODEL_ID = "TinyCLIP-embedded-smoke"


def report_of(smoke_all) -> tuple[str, list[dict]]:
    cfg, _ = smoke_all
    folder = cfg.results_root / MODEL_ID / "report"
    return (folder / "report.md").read_text(), json.loads((folder / "claims.json").read_text())


def test_every_experiment_reaches_the_smoke_report(smoke_all):
    text, claims = report_of(smoke_all)
    for title in ("Incremental addition", "τJp from existing fine-tuned models", "τJp intervention", "Training cost per recipe"):
        assert title in text, title
    scopes = {c["scope"] for c in claims}
    assert "incremental" in scopes and "intervention" in scopes and "standard-tau_jp-from from standard" in scopes
    assert "![incremental](incremental.png)" in text


def test_the_last_incremental_stage_is_task_addition(smoke_all):
    cfg, _ = smoke_all
    folder = cfg.results_root / MODEL_ID / "linear-tau_jp"
    stages = json.loads((folder / "incremental.json").read_text())["results"]["stages"]
    added = json.loads((folder / "addition.json").read_text())["results"]
    assert [s["k"] for s in stages] == [1, 2, 3] and stages[-1]["tuned"] == added["tuned"] and stages[-1]["one_shot"] == added["one_shot"]


def test_incremental_tau_jp_knew_only_earlier_tasks_and_the_control(smoke_all):
    cfg, _ = smoke_all
    order = embedded_study(cfg).tasks
    for k, task in enumerate(order):
        meta = json.loads((cfg.checkpoint_root / MODEL_ID / task / "linear-tau_jp_continual" / "finetuned.json").read_text())
        assert meta["config"]["penalty_tasks"] == [*order[:k], "Shapes"]


def test_tau_jp_from_continues_the_standard_runs_for_a_fraction_of_their_steps(smoke_all):
    cfg, _ = smoke_all
    for task in embedded_study(cfg).tasks:
        run = cfg.checkpoint_root / MODEL_ID / task / "standard-tau_jp-from"
        meta = json.loads((run / "finetuned.json").read_text())
        assert meta["config"]["init_from"] == str(cfg.checkpoint_root / MODEL_ID / task / "standard" / "finetuned.safetensors")
        assert meta["config"]["steps_fraction"] == 0.25 and meta["mode"] == "standard" and meta["reg"] == "tau_jp"
        assert meta["cost"]["seconds_per_step"] > 0 and meta["cost"]["peak_memory_mb"] > 0


def test_the_paired_recipe_pairs_each_task_with_one_partner(smoke_all):
    cfg, _ = smoke_all
    tasks = embedded_study(cfg).tasks
    partner = pairing(tasks, "Shapes")
    for task in tasks:
        meta = json.loads((cfg.checkpoint_root / MODEL_ID / task / "linear-tau_jp-paired" / "finetuned.json").read_text())
        assert meta["config"]["penalty_tasks"] == [partner[task]]
    six = pairing(["a", "b", "c", "d", "e", "f"], "ctl")
    assert all(six[six[t]] == t for t in six) and len(set(six.values())) == 6  # a perfect matching


def _pair_results(tau: dict, interference: dict) -> RunResults:
    tasks = sorted({t for pair in tau for t in pair})
    matrix = [[0.0 if a == b else tau[frozenset((a, b))] for b in tasks] for a in tasks]
    scores = lambda v: Scores({}, {}, 1 - v, 1 - v)  # noqa: E731
    pairs = {f"{a}+{b}": PairResult([a, b], [], 1.0, Chosen(1.0, scores(0), scores(0)), Chosen(1.0, scores(0), scores(interference[frozenset((a, b))])))
             for i, a in enumerate(tasks) for b in tasks[i + 1:]}
    run = RunResults("x", None, {"tau_jp": TauJpResult("test", tasks, tasks, matrix, None, None), "pairs": PairsResult([1.0], pairs)})
    return run


def test_the_intervention_compares_penalised_pairs_with_the_others_pair_by_pair(monkeypatch):
    tasks = ["a", "b", "c", "d"]
    keys = [frozenset((x, y)) for i, x in enumerate(tasks) for y in tasks[i + 1:]]
    penalised = {frozenset(("a", "b")), frozenset(("c", "d"))}
    linear = _pair_results({k: 1.0 for k in keys}, {k: 0.30 for k in keys})
    paired = _pair_results({k: (0.2 if k in penalised else 0.9) for k in keys}, {k: 0.10 + 0.01 * i if k in penalised else 0.28 for i, k in enumerate(keys)})
    paired.settings  # noqa: B018 - the partners come from the recorded penalty tasks
    paired.payloads["pairs"] = {"settings": {"vectors": {t: {"config": {"penalty_tasks": [p]}} for t, p in (("a", "b"), ("b", "a"), ("c", "d"), ("d", "c"))}}}
    runs = {"linear": linear, "linear-tau_jp-paired": paired}
    for run, name in ((linear, "linear"), (paired, "linear-tau_jp-paired")):
        run.evaluated = EvaluatedRun.parse(name)
    found = intervention.comparison(runs)
    assert [r["penalised"] for r in found["rows"]] == [k in penalised for k in sorted(keys, key=lambda k: "+".join(sorted(k)))]
    d = [r["d_interference"] for r in found["rows"]]
    expected = mannwhitneyu([x for x, r in zip(d, found["rows"]) if r["penalised"]], [x for x, r in zip(d, found["rows"]) if not r["penalised"]], alternative="less").pvalue
    claims = intervention.claims(runs)
    assert claims[1].numbers["p"] == pytest.approx(expected) and claims[1].numbers["penalised"] == 2 and claims[1].numbers["others"] == 4


def test_experiment_recipes_plan_as_slurm_jobs_after_the_runs_they_continue(tmp_path, capsys):
    run_study_main(["--preset", "smoke", "--recipes", "experiment", "--launcher", "slurm", "--dry-run", "--checkpoint-root", str(tmp_path / "ck"),
                    "--results-root", str(tmp_path / "res"), "--data-location", str(tmp_path / "data"), "--log-dir", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    jobs = re.findall(r"--job-name=ta-TinyCLIP-embedded-smoke-(\S+)", out)
    assert {"ft-standard", "ft-standard-tau_jp-from", "ft-linear-tau_jp-paired", "ft-linear-tau_jp_continual"} <= set(jobs)  # the required standard runs too
    line = next(x for x in out.splitlines() if "--job-name=ta-TinyCLIP-embedded-smoke-ft-standard-tau_jp-from " in x)
    assert re.search(r"--dependency=afterok:\S*<ta-TinyCLIP-embedded-smoke-ft-standard>", line)


def test_a_sweep_runs_each_value_on_runs_of_its_own(tmp_path, capsys):
    flags = ["--preset", "smoke", "--recipes", "tau_jp", "--sweep", "penalty_coef=0,0.5", "--dry-run", "--checkpoint-root", str(tmp_path / "ck"),
             "--results-root", str(tmp_path / "res"), "--data-location", str(tmp_path / "data")]
    run_study_main(flags)
    out = capsys.readouterr().out
    runs = re.findall(r"^  \w+\s+(\S+)\s+\d+ steps", out, re.M)
    assert runs.count("linear-tau_jp-penalty_coef0") == 3 and runs.count("linear-tau_jp-penalty_coef0.5") == 3 and runs.count("linear-tau_jp") == 3
    assert recipe("tau_jp~penalty_coef=0.5").options  # the point is a recipe of its own, serialisable by name
    with pytest.raises(SystemExit):
        run_study_main([*flags[:4], "--sweep", "talos_keep=0.1", *flags[6:]])
    assert "no recipe of the study takes that option" in capsys.readouterr().err


def test_the_experiment_group_is_in_all_but_not_in_the_default_study():
    assert {"tau_jp_continual", "tau_jp_from", "tau_jp_paired"} <= set(recipes_in(Group.EXPERIMENT))
    assert not {"tau_jp_continual", "tau_jp_from", "tau_jp_paired"} & set(recipes_in(Group.PAPER))
