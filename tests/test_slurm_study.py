"""src/run_study.py --launcher slurm on the real one-node cluster (tests/slurm_cluster.py): the
smoke study's job graph runs to the report, whose tables equal the local run's, and a second
submission of a half-finished study submits only what is missing.

Run with: pytest -m slurm tests/test_slurm_study.py
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_cluster import job_finished, wait_until
from test_training_support import REPO, assert_same_report

from run_study import main as run_study_main
from task_arithmetic.pipeline.study import embedded_study

pytestmark = pytest.mark.slurm
MODEL_ID = "TinyCLIP-embedded-smoke"


def study_flags(root: Path, data: Path, logs: Path) -> list[str]:
    return ["--preset", "smoke", "--data-location", str(data), "--checkpoint-root", str(root / "ck"),
            "--results-root", str(root / "res"), "--device", "cpu", "--launcher", "slurm", "--cpus", "1", "--log-dir", str(logs)]


def planned_jobs(flags: list[str], capsys) -> list[tuple[str, str, str]]:
    """(job name, sbatch command, its units) of each job a submission would make now (--dry-run)."""
    run_study_main([*flags, "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    units = [re.search(r"  \[(.*)\]$", line).group(1) for line in out if line.startswith("# ")]
    lines = [line for line in out if line.startswith("env ")]
    return [(re.search(r"--job-name=(\S+)", line).group(1), line, u) for line, u in zip(lines, units)]


def test_the_study_graph_runs_to_the_report_and_resubmits_only_what_is_missing(slurm_cluster, smoke_study, tmp_path, capsys):
    local, _ = smoke_study
    study = embedded_study(local)
    runs, evaluated = [r.name for r in study.trainings()], [r.evaluated.name for r in study.recipes]
    root, logs = tmp_path / "slurm", tmp_path / "logs"
    # The pretrained TinyCLIP is the study's input, shared with the local run (which tests its pretraining).
    shutil.copytree(local.checkpoint_root / "pretrained", root / "ck" / "pretrained")
    flags = study_flags(root, local.data_location, logs)
    # One thread per process, as the local run in this pytest process (conftest), so the runs match.
    env = {**slurm_cluster, "OMP_NUM_THREADS": "1"}

    submitted = subprocess.run([sys.executable, "src/run_study.py", *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    jobs = dict(re.findall(r"^(\S+): job (\d+)", submitted.stdout, re.M))
    prefix = f"ta-{MODEL_ID}-"
    assert list(jobs) == [prefix + "prepare", *(prefix + "ft-" + r for r in runs), *(prefix + "eval-" + r for r in evaluated), prefix + "report"]
    # The graph's order is Slurm's: each job waits (afterok) for the jobs it reads.
    assert job_dependency(jobs[prefix + "eval-posthoc"], env) == {jobs[prefix + "ft-standard"]}
    assert job_dependency(jobs[prefix + "ft-linear"], env) == {jobs[prefix + "prepare"]}
    # (a run reading another run, matched-strength L2-SP, is ordered by the same graph: test_pipeline_parallel.py)
    wait_until(lambda: all(job_finished(j, env, logs) for j in jobs.values()), 900, "the study's jobs to complete", poll=1)

    local_report, slurm_report = (r / MODEL_ID / "report" for r in (local.results_root, root / "res"))
    tables = sorted(p.name for p in local_report.glob("*.csv"))
    assert tables and tables == sorted(p.name for p in slurm_report.glob("*.csv"))
    assert_same_report(local_report, slurm_report, tables)
    assert json.loads((slurm_report / "claims.json").read_text())

    assert planned_jobs(flags, capsys) == []  # done: nothing to submit
    # Half-finished: one run and the results of one recipe gone -> only those and the report.
    shutil.rmtree(root / "ck" / MODEL_ID / "LandUse" / "linear")
    shutil.rmtree(root / "res" / MODEL_ID / "linear-tau_jp")
    plan = planned_jobs(flags, capsys)
    assert [name for name, _, _ in plan] == [prefix + "ft-linear", prefix + "eval-linear", prefix + "eval-linear-tau_jp", prefix + "report"]
    assert plan[0][2] == "finetune/LandUse/linear" and "--array" not in plan[0][1]  # one unit: a plain job
    assert f"--dependency=afterok:<{prefix}ft-linear>" in plan[1][1] and "--dependency" not in plan[2][1]
    assert f"afterok:<{prefix}eval-linear>:<{prefix}eval-linear-tau_jp>" in plan[3][1]


def job_dependency(job: str, env: dict) -> set[str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job], env=env, capture_output=True, text=True).stdout
    found = re.search(r"Dependency=(\S+)", out)
    if found is None or found.group(1) == "(null)":
        return set()  # already released: the dependency has been met
    return {re.match(r"\d+", part).group(0) for part in re.findall(r"afterok:(\d+)", found.group(1))}
