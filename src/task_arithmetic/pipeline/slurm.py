"""The study's graph (graph.py) as Slurm jobs (src/run_study.py --launcher slurm).

    prepare -> one fine-tuning array per trained run (after the arrays of the runs it reads)
        -> one evaluation job per recipe (afterok on the arrays of its runs) -> the report

Only units not done are submitted (the local study's freshness tests), so submitting a
half-finished study again completes it. Every job runs units of the same graph: each unit is
written as JSON (the serialised study and the unit's id) and the job runs
`src/run_study.py --unit FILE` through scripts/slurm/unit.sbatch (a fine-tuning array element is
requeued on pre-emption and resumes). Paths travel inside the JSON and quoted, so spaces work.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ..errors import UserError
from ..io import atomic_write_text
from ..paths import REPO_ROOT
from ..storage.write_errors import check_output_path, translating_write_errors
from .definition import Study
from .graph import Unit, UnitKind, pending_units, unit_payload

UNIT_BATCH = "scripts/slurm/unit.sbatch"


@dataclass(frozen=True)
class SlurmOptions:
    gpus: int = 0  # per fine-tuning job (> 1: torchrun inside) ; evaluations get one when > 0
    cpus: int = 4
    time: str | None = None
    partition: str | None = None
    mem: str | None = None
    log_dir: Path = Path("logs/slurm")


@dataclass(frozen=True)
class Job:
    name: str  # Slurm job name, also how other jobs refer to it
    units: tuple[Unit, ...]  # one per array element (a single unit: no array)
    resources: tuple[str, ...] = ()
    after: tuple[str, ...] = ()  # names of the jobs that must succeed first
    nproc: int = 1  # processes per element (torchrun when > 1)
    what: str = ""  # one line for the user
    env: dict[str, str] = field(default_factory=dict)


def job_graph(study: Study, units: list[Unit], opts: SlurmOptions) -> list[Job]:
    """The jobs still needed, in submission order (every job after the ones it depends on)."""
    mid = study.spec.model_id
    base = [f"--cpus-per-task={opts.cpus}"] + [f"--{k}={v}" for k, v in (("time", opts.time), ("partition", opts.partition), ("mem", opts.mem)) if v]
    one_gpu = ["--gres=gpu:1"] if opts.gpus > 0 else []
    todo = pending_units(study, units)
    job_of: dict[str, str] = {}  # unit id -> the job that runs it
    jobs: list[Job] = []

    def add(name: str, group: list[Unit], resources: list[str], what: str, nproc: int = 1) -> None:
        after = tuple(dict.fromkeys(job_of[d] for u in group for d in u.after if d in job_of and job_of[d] != name))
        jobs.append(Job(name, tuple(group), tuple(resources), after, nproc, what))
        for u in group:
            job_of[u.id] = name

    for unit in todo:
        if unit.kind is UnitKind.PREPARE:
            add(f"ta-{mid}-prepare", [unit], base + one_gpu, "theta_0 and the zero-shot heads")
    for run in study.trainings():
        group = [u for u in todo if u.kind is UnitKind.FINETUNE and u.run == run]
        if group:
            gpus = [f"--gres=gpu:{opts.gpus}"] if opts.gpus > 0 else []
            add(f"ta-{mid}-ft-{run.name}", group, base + gpus, f"fine-tune {', '.join(str(u.task) for u in group)} ({run.name})", max(opts.gpus, 1))
    for unit in todo:
        if unit.kind is UnitKind.EVALUATE:
            assert unit.recipe is not None
            add(f"ta-{mid}-eval-{study.recipe(unit.recipe).evaluated.name}", [unit], base + one_gpu, f"evaluate {unit.recipe}")
    for unit in todo:
        if unit.kind is UnitKind.REPORT:
            add(f"ta-{mid}-report", [unit], base, "the report")
    return jobs


def unit_file(folder: Path, job: Job, index: int) -> Path:
    return folder / f"{job.name}-{index}.json"


def sbatch_command(job: Job, ids: Mapping[str, str], folder: Path, log_dir: Path) -> list[str]:
    array = [f"--array=0-{len(job.units) - 1}", f"--output={log_dir}/%x-%A_%a.out"] if len(job.units) > 1 else [f"--output={log_dir}/%x-%j.out"]
    cmd = ["sbatch", "--parsable", f"--job-name={job.name}", *job.resources, *array]
    if job.after:
        cmd.append("--dependency=afterok:" + ":".join(ids[name] for name in job.after))
    return [*cmd, UNIT_BATCH]


def job_env(job: Job, folder: Path, python: str) -> dict[str, str]:
    return {"TA_REPO": str(REPO_ROOT), "PYTHON": python, "UNIT_DIR": str(folder), "UNIT_PREFIX": job.name, "NPROC": str(job.nproc)}


def format_commands(jobs: list[Job], folder: Path, log_dir: Path, python: str) -> str:
    if not jobs:
        return "nothing to submit: every step of the study is done"
    lines = []
    placeholder = {j.name: f"<{j.name}>" for j in jobs}  # ids are known once submitted
    for job in jobs:
        env = [f"{k}={v}" for k, v in job_env(job, folder, python).items()]
        units = ", ".join(u.id for u in job.units)
        lines += [f"# {job.what}  [{units}]", shlex.join(["env", *env, *sbatch_command(job, placeholder, folder, log_dir)])]
    return "\n".join(lines)


Runner = Callable[..., subprocess.CompletedProcess]


def submission_folder(log_dir: Path) -> Path:
    """Where this submission's unit files go (one folder per submission, beside the logs)."""
    return Path(log_dir).resolve() / "units" / time.strftime("%Y%m%d-%H%M%S")


def submit(study: Study, jobs: list[Job], opts: SlurmOptions, python: str, run: Runner = subprocess.run) -> dict[str, str]:
    """Write every job's unit files, then submit in order, each with afterok on the ids of the
    ones it needs; returns name -> job id."""
    log_dir = Path(opts.log_dir).resolve()
    folder = submission_folder(log_dir)
    with translating_write_errors(log_dir / "slurm-<job>.out"):  # a read-only or full --log-dir: one line, before anything is written
        check_output_path(log_dir, "folder", what="--log-dir")
        log_dir.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        for index, unit in enumerate(job.units):
            atomic_write_text(unit_file(folder, job, index), json.dumps(unit_payload(study, unit), indent=1))
    ids: dict[str, str] = {}
    for job in jobs:
        try:
            done = run(sbatch_command(job, ids, folder, log_dir), cwd=REPO_ROOT, env={**os.environ, **job_env(job, folder, python)},
                       capture_output=True, text=True)
        except FileNotFoundError:
            raise UserError("sbatch was not found; run --launcher slurm on a Slurm login node (or use --dry-run to see the commands)") from None
        if done.returncode != 0:
            already = f" (already submitted: {', '.join(f'{n} {i}' for n, i in ids.items())})" if ids else ""
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise UserError(f"sbatch refused {job.name}: {tail[-1] if tail else 'no output'}{already}")
        ids[job.name] = done.stdout.strip().split(";")[0]
        print(f"{job.name}: job {ids[job.name]} ({job.what})", flush=True)
    return ids
