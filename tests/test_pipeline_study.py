"""The README's main command in miniature: the smoke preset through every step of the study."""

import dataclasses
import json
import shutil

import pytest

from task_arithmetic.evaluation.registry import EVALUATIONS
from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
from task_arithmetic.pipeline.graph import build_graph
from task_arithmetic.pipeline.study import embedded_study, run_study
from task_arithmetic.recipes import RECIPES, EvaluatedRun, Group, recipes_in
from task_arithmetic.typed_json import dump


@pytest.fixture
def study(smoke_study):
    return smoke_study  # tests/conftest.py: shared with the Slurm study test


def test_every_step_writes_its_outputs(study):
    cfg, written = study
    model_dir = cfg.checkpoint_root / "TinyCLIP-embedded-smoke"
    assert (cfg.checkpoint_root / "pretrained" / "TinyCLIP-embedded-smoke.safetensors").is_file()
    runs = {run.name for run in model_dir.glob("*/*") if (run / "finetuned.json").is_file()}
    plan = embedded_study(cfg)
    assert runs == {run.name for run in plan.trainings()} == {"standard", "linear", "linear-tau_jp"}
    assert [r.name for r in plan.recipes] == list(recipes_in(Group.PAPER))  # the smoke preset: the paper's recipes
    for recipe in plan.recipes:
        for evaluation in EVALUATIONS:
            path = cfg.results_root / "TinyCLIP-embedded-smoke" / recipe.evaluated.name / f"{evaluation}.json"
            assert path.is_file(), path
    report = cfg.results_root / "TinyCLIP-embedded-smoke" / "report" / "report.md"
    assert report in written and "## Claims" in report.read_text()
    claims = json.loads((report.parent / "claims.json").read_text())
    assert claims and all(c["verdict"] in ("holds", "does not hold", "not evaluated") for c in claims)
    assert any(p.suffix == ".png" for p in written)


def test_every_registered_recipe_trains_and_reaches_the_report(smoke_all):
    cfg, written = smoke_all
    plan = embedded_study(cfg)
    assert [r.name for r in plan.recipes] == list(RECIPES)
    model_dir = cfg.checkpoint_root / "TinyCLIP-embedded-smoke"
    assert {run.name for run in model_dir.glob("*/*") if (run / "finetuned.json").is_file()} == {run.name for run in plan.trainings()}
    for recipe in plan.recipes:
        for evaluation in plan.evaluations:
            assert (cfg.results_root / "TinyCLIP-embedded-smoke" / recipe.evaluated.name / f"{evaluation}.json").is_file()
    report = (cfg.results_root / "TinyCLIP-embedded-smoke" / "report" / "report.md").read_text()
    # the field's recipes have their rows beside tau-Jp's
    assert all(f"{r.evaluated.name} (" in report for r in plan.recipes if r.group is Group.FIELD)


def test_every_merging_method_on_every_recipe(study):
    from task_arithmetic.evaluation.merging import METHODS

    cfg, _ = study
    folder = cfg.results_root / "TinyCLIP-embedded-smoke"
    for recipe in embedded_study(cfg).recipes:
        results = json.loads((folder / recipe.evaluated.name / "merging.json").read_text())["results"]
        assert set(results["methods"]) == {m.name for m in METHODS}
        ta = results["methods"]["task_arithmetic"]
        assert ta["coefficient"] in results["alphas"] and len(ta["val_curve"]) == len(results["alphas"])
        assert all(0 <= r["test"]["avg_accuracy"] <= 1 for r in results["methods"].values())
    # the same Val choice as addition: task arithmetic here is the addition protocol on the same runs
    addition = json.loads((folder / "standard" / "addition.json").read_text())["results"]
    merging = json.loads((folder / "standard" / "merging.json").read_text())["results"]["methods"]["task_arithmetic"]
    assert merging["coefficient"] == addition["chosen_alpha"]
    report = (folder / "report" / "report.md").read_text()
    assert "Merging method × recipe" in report and "adamerging_layer_wise" in report


def test_a_frozen_merge_is_still_evaluated_linearised(study):
    """AdaMerging hands back its merge with requires_grad off; the linearised evaluation must still
    use theta - theta_0 (it once ran theta_0 alone: zero-shot accuracy for every linear recipe)."""
    import torch

    from task_arithmetic.merging import TaskWiseAdaMergingAlgorithm, WeightedTaskArithmeticAlgorithm
    from task_arithmetic.merging.modelpool.runs import RunModelPool

    cfg, _ = study
    plan = embedded_study(cfg)
    pool = RunModelPool(plan.spec.name, list(plan.tasks), pretrained=plan.spec.pretrained, mode="linear",
                        cache_dir=plan.spec.cache_dir, checkpoint_root=cfg.checkpoint_root)
    weights = [0.3] * len(plan.tasks)
    fixed = TaskWiseAdaMergingAlgorithm(weights=weights).run(pool)  # fixed coefficients: no data, no Adam
    reference = WeightedTaskArithmeticAlgorithm(weights).run(pool)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        merged, expected, zero_shot = (pool.evaluation_model(m)(images) for m in (fixed, reference, pool.load_pretrained_model()))
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)
    assert (merged - zero_shot).abs().max() > 1e-3


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
    assert out.out.count("up to date") == len(build_graph(embedded_study(cfg)))  # every unit, skipped


def test_batched_standard_results_equal_the_per_edit_path(study):
    """The study's standard evaluations (batched) against one pass per edit, on the smoke world."""
    cfg, _ = study
    plan = embedded_study(cfg)
    selection = RunSelection(plan.spec, plan.layout, plan.data_location, EvaluatedRun.parse("standard"), plan.tasks)
    options = EvalOptions(device="cpu", batch_size=plan.eval_batch_size, max_eval_samples=plan.eval_limit, batched=False)
    session = EvalSession(selection, options)
    folder = cfg.results_root / plan.spec.model_id / "standard"
    for name in plan.evaluations:
        if name == "tau_jp":
            continue  # tangents: the same tangent cache in both paths
        written = json.loads((folder / f"{name}.json").read_text())
        assert written["settings"]["evaluator"] == "batched"
        expected = json.loads(json.dumps(dump(EVALUATIONS[name].run(session, plan.params(name)))))
        assert _differences(expected, written["results"]) == [], name


def _differences(a, b, path=""):
    if isinstance(a, dict):
        return [d for k in a for d in _differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    if path.endswith("loss"):  # a float sum over the examples: rounding only
        return [] if a == pytest.approx(b, rel=1e-5, abs=1e-6) else [path]
    return [] if a == b else [f"{path}: {a} vs {b}"]


def test_a_second_seed_is_a_separate_replicate_summarised_over_seeds(study, tmp_path):
    shared, _ = study
    # a copy: the shared smoke study stays as the other tests (and the Slurm test) expect it
    for folder in ("data", "checkpoints", "results"):
        shutil.copytree(shared.checkpoint_root.parent / folder, tmp_path / folder, copy_function=shutil.copy2)
    cfg = dataclasses.replace(shared, data_location=tmp_path / "data", checkpoint_root=tmp_path / "checkpoints", results_root=tmp_path / "results")
    seed0 = sorted((cfg.checkpoint_root / "TinyCLIP-embedded-smoke").glob("*/*/finetuned.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in seed0}
    written = run_study(dataclasses.replace(cfg, seeds=(0, 1)))
    assert seed0 and all(p.stat().st_mtime_ns == t for p, t in before.items())
    seed_dir = cfg.checkpoint_root / "seeds" / "seed-1" / "TinyCLIP-embedded-smoke"
    meta = json.loads((seed_dir / "Digits" / "standard" / "finetuned.json").read_text())
    assert meta["seed"] == 1
    seeds_md = cfg.results_root / "TinyCLIP-embedded-smoke" / "report" / "seeds.md"
    assert seeds_md in written
    text = seeds_md.read_text()
    assert "# Seeds: 2 replicates" in text and "of 2** seeds" in text
    summary = json.loads(seeds_md.with_suffix(".json").read_text())
    single = summary["numbers"]["standard (non-linear FT), single-task avg"]
    assert single["n"] == 2 and len(single["values"]) == 2 and single["low"] <= single["mean"] <= single["high"]
