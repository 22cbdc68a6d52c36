"""src/run_study.py: the plan (--dry-run, before any weights or data exist) and its cost, recipes
of imported runs, bad input."""

import re

import pytest

from run_study import main  # src/run_study.py (conftest puts src/ on the path)


def dry_run(tmp_path, capsys, *extra):
    main(["--dry-run", "--data-location", str(tmp_path / "no_data"), "--checkpoint-root", str(tmp_path / "ck"),
          "--results-root", str(tmp_path / "res"), *extra])
    return capsys.readouterr().out


def test_dry_run_plans_the_real_study_without_data_or_weights(tmp_path, capsys):
    out = dry_run(tmp_path, capsys, "--model", "ViT-B-32", "--pretrained", "openai", "--tasks", "real8",
                  "--seconds-per-image", "plain=0.001,linearized=0.003")
    runs = re.findall(r"^  (\w+)\s+(standard|linear|linear-tau_jp)\s+(\d+) steps, (\d+) examples(?: \+ (\d+) penalty inputs)?\s+\[to do\]$", out, re.M)
    assert len(runs) == 24 and {r[0] for r in runs} == {"Cars", "DTD", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SUN397", "SVHN"}
    assert all(int(r[3]) == 128 * int(r[2]) for r in runs)  # the paper's batch
    from task_arithmetic.evaluation.registry import EVALUATIONS
    from task_arithmetic.recipes import Group, recipes_in

    assert len(re.findall(r"\[to do\]$", out, re.M)) == 24 + len(recipes_in(Group.PAPER)) * len(EVALUATIONS)
    plain = sum(int(r[3]) for r in runs if r[1] == "standard")
    linear = sum(int(r[3]) + int(r[4] or 0) for r in runs if r[1] != "standard")
    assert f"plain {plain:,}, linearized {linear:,}" in out
    hours = float(re.search(r"GPU hours \(estimate.*\): ([\d.]+) in all", out).group(1))
    assert hours == pytest.approx((plain * 0.001 + linear * 0.003) / 3600, abs=0.06)
    assert not (tmp_path / "ck").exists() and not (tmp_path / "no_data").exists()  # a plan writes nothing


def test_dry_run_counts_every_real20_task_from_its_default_epochs(tmp_path, capsys):
    out = dry_run(tmp_path, capsys, "--model", "ViT-B-32", "--pretrained", "openai", "--tasks", "real20", "--recipes", "standard",
                  "--evaluations", "single_task")
    runs = dict(re.findall(r"^  (\w+)\s+standard\s+(\d+) steps, \d+ examples\s+\[to do\]$", out, re.M))
    assert len(runs) == 20 and "size unknown" not in out
    # CIFAR10: 45,000 images after the Val hold-out, 352 steps an epoch at batch 128, 6 epochs
    assert runs["CIFAR10"] == str(6 * 352) and runs["PCAM"] == "2009"
    assert re.search(r"cost: training image passes .*: plain [\d,]+, linearized 0;", out)


def test_tagged_recipes_read_runs_and_train_nothing(tmp_path, capsys):
    out = dry_run(tmp_path, capsys, "--tasks", "Cars,DTD", "--recipes", "standard@public,posthoc@public", "--evaluations", "single_task,addition")
    assert "fine-tuning runs (0)" in out
    assert re.findall(r"^  (\S+)\s+(\w+)\s+\[to do\]$", out, re.M) == [
        ("standard-public", "single_task"), ("standard-public", "addition"), ("posthoc-public", "single_task"), ("posthoc-public", "addition")]


def test_the_embedded_preset_plans_like_run_embedded(tmp_path, capsys):
    from run_embedded import main as embedded_main

    embedded_main(["--preset", "smoke", "--dry-run", "--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res")])
    out = capsys.readouterr().out
    from task_arithmetic.recipes import Group, recipe, recipes_in

    trained = {recipe(n).run for n in recipes_in(Group.PAPER) if recipe(n).trains}  # the smoke preset: the paper's recipes
    assert "TinyCLIP-embedded-smoke" in out and out.count(" 15 steps, ") == 3 * len(trained)  # 3 tasks, capped at 15 steps
    embedded_main(["--preset", "smoke", "--dry-run", "--recipes", "standard,talos", "--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res")])
    assert capsys.readouterr().out.count(" 15 steps, ") == 6  # --recipes chooses on the embedded study too


@pytest.mark.parametrize("extra, message", [
    (["--recipes", "fancy"], "unknown recipe 'fancy'"),
    (["--evaluations", "single_task,speed"], "unknown evaluation 'speed'"),
    (["--tasks", "Cars", "--evaluations", "pairs"], "at least 2 tasks"),
    (["--tasks", "Carz"], "Cars"),
    (["--seeds", "0,x"], "comma-separated integers"),
    (["--seeds", "1,1"], "distinct seeds"),
    (["--pretrain-seeds"], "--pretrain-seeds only applies to the embedded TinyCLIP"),
])
def test_bad_input_is_one_line(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        dry_run(tmp_path, capsys, *extra)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_wider_suite_study_draws_tau_jp_inputs_from_the_whole_suite(tmp_path):
    from run_study import build_study, parser
    from task_arithmetic.recipes import RunId
    from task_arithmetic.recipes.base import NoSettings
    from task_arithmetic.training.config import resolve_config

    tau_jp, standard = RunId.of("linear", "tau_jp"), RunId.of("standard")

    def study(tasks: str):
        return build_study(parser().parse_args(["--tasks", tasks, "--data-location", str(tmp_path), "--checkpoint-root", str(tmp_path / "ck")]))

    wide = study("real20")
    assert wide.control == "ImageNet" and len(wide.tasks) == 20
    cars = resolve_config(wide.finetune_config("Cars", tau_jp)).reg_settings
    assert len(cars.penalty_tasks) == 20 and "CIFAR10" in cars.penalty_tasks and cars.penalty_tasks[-1] == "ImageNet"
    assert resolve_config(wide.finetune_config("Cars", standard)).reg_settings == NoSettings()
    # a study within the task's own suite keeps the task's default (its suite's other tasks + control)
    assert resolve_config(study("real8").finetune_config("Cars", tau_jp)).reg_settings.penalty_tasks == resolve_config(
        study("Cars,DTD").finetune_config("Cars", tau_jp)).reg_settings.penalty_tasks
    twelve = study("embedded12")
    assert twelve.control == "Shapes"
    assert len(resolve_config(twelve.finetune_config("Digits", tau_jp)).reg_settings.penalty_tasks) == 12


def test_slurm_dry_run_prints_the_job_graph(tmp_path, capsys):
    out = dry_run(tmp_path, capsys, "--tasks", "Cars,DTD", "--launcher", "slurm", "--gpus", "2", "--time", "4:00:00", "--penalty-batch", "4")
    jobs = re.findall(r"^env .*--job-name=ta-ViT-B-32-openai-(\S+) .*$", out, re.M)
    assert jobs == ["prepare", "ft-standard", "ft-linear", "ft-linear-tau_jp", "eval-standard", "eval-posthoc", "eval-linear", "eval-linear-tau_jp", "report"]
    lines = {name: line for name, line in zip(jobs, (text for text in out.splitlines() if text.startswith("env ")))}
    units = dict(zip(jobs, re.findall(r"^# .*  \[(.*)\]$", out, re.M)))
    assert "--array=0-1" in lines["ft-linear"] and units["ft-linear"] == "finetune/Cars/linear, finetune/DTD/linear"
    assert "--gres=gpu:2" in lines["ft-linear"] and "NPROC=2" in lines["ft-linear"] and "scripts/slurm/unit.sbatch" in lines["ft-linear"]
    assert "--dependency=afterok:<ta-ViT-B-32-openai-ft-standard>" in lines["eval-posthoc"] and units["eval-posthoc"] == "evaluate/posthoc"
    assert "UNIT_PREFIX=ta-ViT-B-32-openai-eval-posthoc" in lines["eval-posthoc"]
    assert "--gres=gpu:1" in lines["eval-linear"] and "--time=4:00:00" in lines["eval-linear"]
    assert lines["report"].count("eval-") == 4 and not (tmp_path / "ck").exists()


def test_recipe_options_reach_only_the_runs_whose_plug_ins_own_them(tmp_path):
    from run_study import build_study, parser
    from task_arithmetic.recipes import RunId
    from task_arithmetic.training.config import resolve_config

    study = build_study(parser().parse_args(["--tasks", "Cars,DTD", "--penalty-batch", "4", "--data-location", str(tmp_path)]))
    assert resolve_config(study.finetune_config("Cars", RunId.of("linear", "tau_jp"))).reg_settings.penalty_batch == 4
    assert "penalty_batch" not in study.finetune_config("Cars", RunId.of("standard")).options
