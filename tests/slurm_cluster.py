"""A real one-node Slurm cluster on localhost for the tests (installed with apt when missing).

tests/conftest.py turns start_cluster into the session-wide `slurm_cluster` fixture, so every
Slurm test shares one cluster: daemons start once per test run.
"""

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


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


def start_cluster(tmp_path_factory):
    """Start a one-node cluster on localhost; yields the environment (SLURM_CONF) to run its commands with."""
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


def slurm_logs(folder: Path, env: dict) -> str:
    """The job logs in `folder` and the daemons' logs, tails only (for a failure message)."""
    daemons = Path(env["SLURM_CONF"]).parent
    files = [*sorted(folder.glob("*.out")), daemons / "slurmctld.log", daemons / "slurmd.log"]
    return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in files if p.is_file())


def job_finished(job: str, env: dict, logs: Path) -> bool:
    """True once every element of `job` COMPLETED; fails the test, with the logs, if one ended otherwise."""
    fields = job_fields(job, env)
    states = [j.get("JobState") for j in fields]
    if any(s in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY") for s in states):
        # pytest.fail keeps the whole message; an assert's repr would cut the logs short.
        pytest.fail(f"job {job} ended {states} ({[j.get('ExitCode') for j in fields]})\n{slurm_logs(logs, env)}", pytrace=False)
    return bool(states) and all(s == "COMPLETED" for s in states)
