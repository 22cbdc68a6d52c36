"""One process owns a run folder: rank 0 holds its lock, and every rank learns whether it got it.

Under torchrun only rank 0 writes files, so only rank 0 locks; the outcome is shared with one
small all-reduce so the other ranks stop too instead of waiting at the next barrier.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch

from ..errors import UserError
from ..io import remove_stale_temporaries
from ..storage.locks import FileLock
from .distributed import DistContext, sum_over_processes

LOCK_NAME = ".lock"


class RunFolderBusy(UserError):
    """Rank 0 could not lock the run folder (it printed the holder); the other ranks stop with this."""


@contextlib.contextmanager
def owned_run_folder(run_dir: Path, ctx: DistContext, device: torch.device, temp_folders: tuple[Path, ...] = ()) -> Iterator[None]:
    """Hold the run folder's lock for the block; temporaries a killed writer left there are removed."""
    lock = FileLock(Path(run_dir) / LOCK_NAME, what=f"run folder {run_dir}")
    failure: UserError | None = None
    if ctx.is_main:
        try:
            lock.acquire()
        except UserError as err:
            failure = err
    failed = sum_over_processes(torch.tensor([float(failure is not None)], dtype=torch.float64), ctx, device)
    if failure is not None:
        raise failure
    if failed[0] > 0:
        raise RunFolderBusy(f"rank 0 could not lock {run_dir}; see its message")
    try:
        if ctx.is_main:
            for folder in (Path(run_dir), *temp_folders):
                remove_stale_temporaries(folder)
        yield
        if ctx.is_main:
            for folder in (Path(run_dir), *temp_folders):
                remove_stale_temporaries(folder)
    finally:
        if ctx.is_main:
            lock.release()
