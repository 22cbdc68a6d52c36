"""scripts/slurm/submit.sh --dry-run (no Slurm needed): the wrapper is the study's Slurm launcher,
and a suite's tau-Jp runs draw their penalty inputs from the suite."""

import json
import re
import subprocess


def test_submit_sh_is_the_study_launcher_and_suite_runs_draw_on_the_suite(repo_root, tmp_path):
    def dry(*args: str) -> str:
        out = subprocess.run(["bash", "scripts/slurm/submit.sh", "--dry-run", "--checkpoint-root", str(tmp_path / "ck"),
                              "--data-location", str(tmp_path / "data"), "--log-dir", str(tmp_path / "logs"), *args],
                             cwd=repo_root, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    out = dry("--tasks", "real20", "--reg", "tau_jp")
    jobs = re.findall(r"--job-name=ta-ViT-B-32-openai-(\S+)", out)
    assert jobs == ["prepare", "ft-linear-tau_jp", "eval-linear-tau_jp", "report"]
    assert "--array=0-19" in out and "unit.sbatch" in out and not (tmp_path / "ck").exists()


def test_a_suite_study_gives_each_tau_jp_run_the_suite_in_its_unit(tmp_path):
    from run_study import build_study, parser
    from task_arithmetic.pipeline.graph import build_graph, unit_from_payload, unit_payload
    from task_arithmetic.training.config import resolve_config

    def penalty_tasks(*flags: str) -> tuple[str, ...]:
        study = build_study(parser().parse_args(["--data-location", str(tmp_path), "--reg", "tau_jp", *flags]))
        unit = next(u for u in build_graph(study) if u.id == "finetune/Cars/linear-tau_jp")
        study2, unit2 = unit_from_payload(json.loads(json.dumps(unit_payload(study, unit))))  # as a Slurm job reads it
        return resolve_config(study2.finetune_config(unit2.task, unit2.run)).reg_settings.penalty_tasks

    assert len(penalty_tasks("--tasks", "real20")) == 20  # the suite's other 19 tasks and ImageNet
    assert len(penalty_tasks("--tasks", "Cars,DTD")) == 8  # a task list within real8: the task's own suite
    assert penalty_tasks("--tasks", "real14", "--penalty-tasks", "ImageNet") == ("ImageNet",)  # the user's flag wins
