"""Device choice, seeding and thread settings shared by every entry point."""

from __future__ import annotations

import functools
import os
import random
import subprocess

from .errors import UserError
from .lazy import np, torch  # imported on first use: every script imports this module before parsing
from .paths import REPO_ROOT


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {requested} was asked for but no CUDA GPU is visible; use --device cpu")
    try:
        return torch.device(requested)
    except RuntimeError as err:
        raise UserError(f"unknown device '{requested}'; use auto, cpu, cuda or cuda:N") from err


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may run on (taskset, Slurm, cgroups)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def limit_threads() -> None:
    """Respect Slurm's CPU allocation instead of oversubscribing a shared node."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        torch.set_num_threads(int(cpus))


@functools.lru_cache(maxsize=1)
def code_revision() -> str:
    """The git commit of the code, recorded with every checkpoint and result; "unknown" outside git."""
    try:
        result = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and sha else "unknown"
