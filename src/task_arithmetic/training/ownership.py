"""One process owns a run folder: rank 0 holds its lock, and every rank learns whether it got it.

Under torchrun only rank 0 writes files, so only rank 0 locks; the outcome is shared with one
small all-reduce so the other ranks stop too instead of waiting at the next barrier.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Iterator

import torch

from ..errors import UserError
from ..io import remove_stale_temporaries, tidy_new_folders
from ..storage.locks import FileLock, LockHeld
from .distributed import DistContext, sum_over_processes

LOCK_NAME = ".lock"


class RunFolderBusy(UserError):
    """Rank 0 could not lock the run folder (it printed the holder); the other ranks stop with this."""


@contextlib.contextmanager
def owned_run_folder(run_dir: Path, ctx: DistContext, device: torch.device, temp_folders: tuple[Path, ...] = ()) -> Iterator[None]:
    """Hold the run folder's lock for the block; temporaries a killed writer left there are removed."""
    with tidy_new_folders(run_dir):  # a run that fails before writing anything leaves no folder behind
        yield from _owned(run_dir, ctx, device, temp_folders)


def _owned(run_dir: Path, ctx: DistContext, device: torch.device, temp_folders: tuple[Path, ...]) -> Iterator[None]:
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


def tidy_finished_run(run_dir: Path, leftovers: tuple[Path, ...]) -> list[Path]:
    """Remove what a finished run no longer needs but a kill can leave: the resumable state of a
    run killed between its final save and its clean-up, a failed --force run's pending log and
    state, temporaries, and a dead holder's lock. Only when no live process holds the folder
    (a --force run under way keeps its files); returns what was removed."""
    run_dir = Path(run_dir)
    present = [p for p in leftovers if p.exists()]
    if not present and not (run_dir / LOCK_NAME).exists() and not any(run_dir.glob(".*.tmp")):
        return []
    try:
        with FileLock(run_dir / LOCK_NAME, what=f"run folder {run_dir}"):
            for path in present:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            present += remove_stale_temporaries(run_dir)
    except LockHeld:
        return []
    if present:
        print(f"removed what an interrupted save or --force run left in {run_dir}: {', '.join(p.name for p in present)}", file=sys.stderr)
    return present
