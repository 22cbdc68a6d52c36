"""The README's main command in miniature: the smoke preset through every step of the study."""

import json

import pytest

from task_arithmetic.pipeline.study import EVAL_RECIPES, TRAINING_RECIPES, StudyConfig, run_study

EVALUATIONS = ("single_task", "addition", "negation", "pairs", "tau_jp", "disentanglement")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cfg = StudyConfig("smoke", root / "data", root / "checkpoints", root / "results", device="cpu", progress=False)
    written = run_study(cfg)
    return cfg, written


def test_every_step_writes_its_outputs(study):
    cfg, written = study
    model_dir = cfg.checkpoint_root / "TinyCLIP-embedded-smoke"
    assert (cfg.checkpoint_root / "pretrained" / "TinyCLIP-embedded-smoke.safetensors").is_file()
    runs = {run.name for run in model_dir.glob("*/*") if (run / "finetuned.json").is_file()}
    assert runs == {"standard", "linear", "linear-tau_jp"} and len(TRAINING_RECIPES) == 3
    for recipe in EVAL_RECIPES:
        for evaluation in EVALUATIONS:
            path = cfg.results_root / "TinyCLIP-embedded-smoke" / recipe.results_run / f"{evaluation}.json"
            assert path.is_file(), path
    report = cfg.results_root / "TinyCLIP-embedded-smoke" / "report" / "report.md"
    assert report in written and "## Claims" in report.read_text()
    claims = json.loads((report.parent / "claims.json").read_text())
    assert claims and all(c["verdict"] in ("holds", "does not hold", "not evaluated") for c in claims)
    assert any(p.suffix == ".png" for p in written)


def test_fine_tuning_beats_zero_shot(study):
    cfg, _ = study
    results = json.loads((cfg.results_root / "TinyCLIP-embedded-smoke" / "standard" / "single_task.json").read_text())
    summary = results["results"]["summary"]
    assert summary["finetuned_test_avg"] > summary["zeroshot_test_avg"] + 0.05


def test_rerun_skips_finished_steps(study, capsys):
    cfg, _ = study
    results = sorted((cfg.results_root / "TinyCLIP-embedded-smoke").glob("*/*.json"))
    before = {p: p.stat().st_mtime_ns for p in results if p.parent.name != "report"}
    run_study(cfg)
    out = capsys.readouterr()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert out.out.count("up to date") == len(EVAL_RECIPES)

