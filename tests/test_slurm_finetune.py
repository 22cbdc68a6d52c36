"""scripts/slurm on a real one-node Slurm cluster that the test installs (apt), starts and stops.

Fine-tuning array over two embedded tasks -> evaluation chained with afterok, plus one run that
is pre-empted the way Slurm does it before a time limit (SIGUSR1 to the batch shell), requeued,
and resumed to the end. Run with: pytest -m slurm tests/test_slurm_finetune.py
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


def test_array_eval_chain_and_preemption_requeue(slurm_cluster, tmp_path):
    env, logs = slurm_cluster, tmp_path / "logs"
    tiny = ["--max-steps", "2", "--batch-size", "8", "--max-train-samples", "32", "--device", "cpu"]
    submitted = subprocess.run(
        ["bash", "scripts/slurm/submit.sh", "--tasks", "Digits,Shapes", "--mode", "linear", "--cpus", "1", "--log-dir", str(logs),
         *run_flags(tmp_path / "chain"), "--eval-args", "--max-eval-samples 16 --device cpu", "--", *tiny],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert submitted.returncode == 0, submitted.stderr
    array_id, eval_id = re.findall(r"job (\d+)", submitted.stdout)

    # A longer run, pre-empted like Slurm does before a time limit: SIGUSR1 to the batch shell.
    pre_root = tmp_path / "pre"
    pre_env = {**env, "TA_REPO": str(REPO), "TASKS": "Digits", "MODE": "linear", "REG": "none", "NPROC": "1",
               "FINETUNE_ARGS": " ".join(run_flags(pre_root) + ["--max-steps", "200", "--batch-size", "8", "--max-train-samples", "32",
                                                                  "--device", "cpu", "--save-every", "1000"])}
    pre_id = subprocess.run(
        ["sbatch", "--parsable", "--array=0-0", "--cpus-per-task=1", f"--output={logs}/pre-%A_%a.out", "scripts/slurm/finetune_array.sbatch"],
        cwd=REPO, env=pre_env, capture_output=True, text=True, check=True,
    ).stdout.strip().split(";")[0]
    pre_log = pre_root / "ck" / MODEL_ID / "Digits" / "linear" / "log.jsonl"
    wait_until(lambda: pre_log.is_file() and len(pre_log.read_text().splitlines()) >= 1, 120, "the pre-emptible run to start", poll=0.02)
    subprocess.run(["scancel", "--signal=USR1", "--batch", pre_id], env=env, check=True)
    # Slurm holds a requeued job back for cred_expire seconds (5 here, 120 by default) so that
    # the node has forgotten the old run's revoked credential; forcing an earlier start makes
    # the node refuse the job ("Job credential revoked") and it ends FAILED.
    wait_until(lambda: any(j.get("Restarts") == "1" for j in job_fields(pre_id, env)), 60, "the requeue")

    def finished(job: str) -> bool:
        return job_finished(job, env, logs)

    wait_until(lambda: finished(array_id) and finished(pre_id) and finished(eval_id), 240, "all jobs to complete")

    for task in ("Digits", "Shapes"):
        weights = tmp_path / "chain" / "ck" / MODEL_ID / task / "linear" / "finetuned.safetensors"
        encoder = load_encoder(weights, expect_model="TinyCLIP")
        assert encoder.metadata["mode"] == "linear" and encoder.metadata["task"] == task and encoder.metadata["steps"] == 2
    assert (tmp_path / "chain" / "res" / MODEL_ID / "linear" / "addition.json").is_file()

    pre_out = next(logs.glob("pre-*.out")).read_text()
    assert "requeueing job" in pre_out and "resuming at step" in pre_out
    assert job_fields(pre_id, env)[0]["Restarts"] == "1"
    steps = [json.loads(line)["step"] for line in pre_log.read_text().splitlines()]
    assert steps == list(range(1, 201))
    assert (pre_root / "ck" / MODEL_ID / "Digits" / "linear" / "finetuned.json").is_file()

