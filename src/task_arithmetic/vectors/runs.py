"""Locate fine-tuned runs by the shared path scheme; a missing run names the command that makes it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..io import metadata_path, read_json
from ..models.factory import ModelSpec
from ..paths import Layout
from ..recipes import RunId
from ..storage.checksums import DIGEST_KEY, DamagedFile, verify_digest


def finetune_command(spec: ModelSpec, task: str, run: RunId, layout: Layout, data_location: Path) -> str:
    """The src/finetune.py command that makes `run` of `task` (one flag names the run whole)."""
    parts = [
        "python", "src/finetune.py",
        "--task", task,
        "--model", spec.name,
        "--pretrained", spec.pretrained if spec.pretrained is not None else "none",
        "--run", run.name,
    ]
    if spec.cache_dir:
        parts += ["--cache-dir", str(spec.cache_dir)]
    parts += ["--checkpoint-root", str(layout.checkpoint_root), "--data-location", str(data_location)]
    return " ".join(shlex.quote(p) for p in parts)


def locate_runs(spec: ModelSpec, tasks: Sequence[str], run: RunId, layout: Layout, data_location: Path) -> dict[str, Path]:
    """{task: finished fine-tuned checkpoint}; one UserError naming the command for the first
    missing run and the other tasks that need the same."""
    missing = [t for t in tasks if not metadata_path(layout.finetuned(spec.model_id, t, run.name)).is_file()]
    if missing:
        first = layout.finetuned(spec.model_id, missing[0], run.name)
        unfinished = first.is_file() or layout.train_state(spec.model_id, missing[0], run.name).exists()
        state = "is unfinished (no metadata yet)" if unfinished else "does not exist"
        others = f" (likewise for {', '.join(missing[1:])})" if len(missing) > 1 else ""
        command = finetune_command(spec, missing[0], run, layout, data_location)
        raise UserError(f"fine-tuned run {first} {state}; make it with: {command}{others}")
    return {t: finetuned_checkpoint(spec, t, run, layout, data_location) for t in tasks}


def finetuned_checkpoint(spec: ModelSpec, task: str, run: RunId, layout: Layout, data_location: Path) -> Path:
    """Path of a finished fine-tuned run, or a UserError naming the command that makes it."""
    path = layout.finetuned(spec.model_id, task, run.name)
    command = finetune_command(spec, task, run, layout, data_location)
    if not metadata_path(path).is_file():
        unfinished = path.is_file() or layout.train_state(spec.model_id, task, run.name).exists()
        state = "is unfinished (no metadata yet)" if unfinished else "does not exist"
        raise UserError(f"fine-tuned run {path} {state}; make it with: {command}")
    if not path.is_file():
        raise UserError(f"fine-tuned run {path} has metadata but no weights; re-run: {command}")
    meta = read_json(metadata_path(path))
    if meta.get("mode") not in (None, run.mode.name):
        raise UserError(
            f"{path} was trained in mode {meta.get('mode')!r}, expected {run.mode.name!r}; "
            f"the run folder is inconsistent, re-run: {command}"
        )
    # Final weights are never rebuilt behind the user's back: a damaged file is an error.
    try:
        verify_digest(path, meta.get(DIGEST_KEY))
    except DamagedFile as err:
        raise UserError(f"fine-tuned weights {path} are damaged ({err.detail}); remake them with: {command} --force") from err
    return path
