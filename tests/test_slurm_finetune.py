"""Slurm fine-tuning on a real one-node Slurm cluster that the test installs (apt), starts and stops.

scripts/slurm/submit.sh (the study's launcher): a fine-tuning array over two embedded tasks, its
evaluation chained with afterok; plus one run that is pre-empted the way Slurm does it before a
time limit (SIGUSR1 to the batch shell of scripts/slurm/unit.sbatch), requeued, and resumed to
the end. Run with: pytest -m slurm tests/test_slurm_finetune.py
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
from slurm_cluster import job_fields, job_finished, wait_until
from test_training_support import REPO

from task_arithmetic.models.encoder import load_encoder

pytestmark = pytest.mark.slurm
MODEL_ID = "TinyCLIP-random"


def run_flags(root: Path) -> list[str]:
    return ["--model", "TinyCLIP", "--pretrained", "none", "--checkpoint-root", str(root / "ck"),
            "--results-root", str(root / "res"), "--data-location", str(root / "data")]


def submit(env: dict, logs: Path, *flags: str) -> dict[str, str]:
    """bash scripts/slurm/submit.sh FLAGS -> {job name: job id}."""
    done = subprocess.run(["bash", "scripts/slurm/submit.sh", "--cpus", "1", "--log-dir", str(logs), "--device", "cpu", *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(re.findall(r"^(\S+): job (\d+)", done.stdout, re.M))


def test_array_eval_chain_and_preemption_requeue(slurm_cluster, tmp_path):
    env, logs = slurm_cluster, tmp_path / "logs"
    tiny = ["--max-steps", "2", "--batch-size", "8", "--max-train-samples", "32", "--max-eval-samples", "16"]
    chain = submit(env, logs, "--tasks", "Digits,Shapes", "--mode", "linear", *run_flags(tmp_path / "chain"), *tiny)
    prefix = f"ta-{MODEL_ID}-"
    assert list(chain) == [prefix + "prepare", prefix + "ft-linear", prefix + "eval-linear", prefix + "report"]

    # A longer run, pre-empted like Slurm does before a time limit: SIGUSR1 to the batch shell.
    pre_root = tmp_path / "pre"
    pre = submit(env, logs, "--tasks", "Digits", "--mode", "linear", "--evaluations", "single_task", *run_flags(pre_root),
                 "--max-steps", "200", "--batch-size", "8", "--max-train-samples", "32", "--max-eval-samples", "16", "--save-every", "1000")
    pre_id = pre[prefix + "ft-linear"]
    pre_log = pre_root / "ck" / MODEL_ID / "Digits" / "linear" / "log.jsonl"
    wait_until(lambda: pre_log.is_file() and len(pre_log.read_text().splitlines()) >= 1, 180, "the pre-emptible run to start", poll=0.02)
    subprocess.run(["scancel", "--signal=USR1", "--batch", pre_id], env=env, check=True)
    # Slurm holds a requeued job back for cred_expire seconds (5 here, 120 by default) so that
    # the node has forgotten the old run's revoked credential; forcing an earlier start makes
    # the node refuse the job ("Job credential revoked") and it ends FAILED.
    wait_until(lambda: any(j.get("Restarts") == "1" for j in job_fields(pre_id, env)), 60, "the requeue")

    def finished(job: str) -> bool:
        return job_finished(job, env, logs)

    wait_until(lambda: all(finished(j) for j in [*chain.values(), *pre.values()]), 300, "all jobs to complete")

    for task in ("Digits", "Shapes"):
        weights = tmp_path / "chain" / "ck" / MODEL_ID / task / "linear" / "finetuned.safetensors"
        encoder = load_encoder(weights, expect_model="TinyCLIP")
        assert encoder.metadata["mode"] == "linear" and encoder.metadata["task"] == task and encoder.metadata["steps"] == 2
    assert (tmp_path / "chain" / "res" / MODEL_ID / "linear" / "addition.json").is_file()

    pre_out = next(logs.glob(f"{prefix}ft-linear-{pre_id}.out")).read_text()
    assert "requeueing job" in pre_out and "resuming at step" in pre_out
    assert job_fields(pre_id, env)[0]["Restarts"] == "1"
    steps = [json.loads(line)["step"] for line in pre_log.read_text().splitlines()]
    assert steps == list(range(1, 201))
    assert (pre_root / "ck" / MODEL_ID / "Digits" / "linear" / "finetuned.json").is_file()
