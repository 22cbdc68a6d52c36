"""scripts/slurm on a real one-node Slurm cluster that the test installs (apt), starts and stops.

Fine-tuning array over two embedded tasks -> evaluation chained with afterok, plus one run that
is pre-empted the way Slurm does it before a time limit (SIGUSR1 to the batch shell), requeued,
and resumed to the end. Run with: pytest -m slurm tests/test_slurm_finetune.py
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from task_arithmetic.models.encoder import load_encoder
from test_training_support import REPO

pytestmark = pytest.mark.slurm
MODEL_ID = "TinyCLIP-random"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def ensure_slurm_installed() -> None:
    if shutil.which("slurmctld") and shutil.which("slurmd") and shutil.which("sbatch"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("slurm-wlm is not installed and cannot be installed here (needs apt-get as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "slurm-wlm"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=300)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not shutil.which("slurmctld"):
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"apt-get install slurm-wlm failed: {tail[0]}")


def slurm_conf(folder: Path, ctld_port: int, slurmd_port: int) -> str:
    return f"""ClusterName=tatest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
AuthInfo=cred_expire=5
CredType=cred/none
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


def stop_pid_file(pid_file: Path) -> None:
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    # CI runs this for real (it is root on a fresh machine); TA_SKIP_SLURM=1 opts out locally.
    if os.environ.get("TA_SKIP_SLURM") == "1":
        pytest.skip("TA_SKIP_SLURM=1")
    if os.geteuid() != 0:
        pytest.skip("a one-node Slurm cluster on localhost needs root (SlurmUser=root)")
    ensure_slurm_installed()
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, *free_ports(2)))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        subprocess.run(["slurmctld", "-f", str(conf)], env=env, check=True, timeout=30)
        subprocess.run(["slurmd", "-f", str(conf), "-N", "localhost"], env=env, check=True, timeout=30)
        deadline = time.monotonic() + 30
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout:
            if time.monotonic() > deadline:
                raise AssertionError(f"Slurm node never became idle: {(folder / 'slurmctld.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield env
    finally:
        stop_pid_file(folder / "slurmd.pid")
        stop_pid_file(folder / "slurmctld.pid")


def job_fields(job_id: str, env: dict) -> list[dict[str, str]]:
    """JobState etc. of a job (one dict per array element); [] once Slurm has forgotten it."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True).stdout
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]


def wait_until(predicate, timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


def run_flags(root: Path) -> list[str]:
    return ["--model", "TinyCLIP", "--pretrained", "none", "--checkpoint-root", str(root / "ck"),
            "--results-root", str(root / "res"), "--data-location", str(root / "data")]


def test_array_eval_chain_and_preemption_requeue(cluster, tmp_path):
    env, logs = cluster, tmp_path / "logs"
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
        fields = job_fields(job, env)
        states = [j.get("JobState") for j in fields]
        if any(s in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY") for s in states):
            # pytest.fail keeps the whole message; an assert's repr would cut the logs short.
            pytest.fail(f"job {job} ended {states} ({[j.get('ExitCode') for j in fields]})\n{_logs(logs, env)}", pytrace=False)
        return bool(states) and all(s == "COMPLETED" for s in states)

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


def _logs(folder: Path, env: dict) -> str:
    daemons = Path(env["SLURM_CONF"]).parent
    files = [*sorted(folder.glob("*.out")), daemons / "slurmctld.log", daemons / "slurmd.log"]
    return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in files if p.is_file())
