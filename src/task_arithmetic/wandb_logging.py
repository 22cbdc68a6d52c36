"""Weights & Biases, only when asked for (--wandb offline|online; wandb is imported then).

Project and entity: --wandb-project / --wandb-entity, else the standard WANDB_PROJECT /
WANDB_ENTITY environment variables, else the project "task-arithmetic" (and wandb's default
entity). A fine-tuning run logs every step; it keeps its W&B run id in its resumable state
(train_state/wandb.json), so a resumed run continues the same W&B run, and a run started over
(--force, or nothing saved yet) starts a new one. An evaluation logs its headline numbers as the
W&B run's summary and all its numbers (the tidy rows) as a table.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, cast

from .errors import UserError

MODES = ("off", "offline", "online")
DEFAULT_PROJECT = "task-arithmetic"
ROW_COLUMNS = ("task", "split", "point", "alpha", "metric", "value")


@dataclass(frozen=True)
class WandbSettings:
    mode: str = "off"
    project: str | None = None
    entity: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"unknown --wandb '{self.mode}'; choose one of {', '.join(MODES)}")

    @property
    def on(self) -> bool:
        return self.mode != "off"

    def resolved_project(self) -> str:
        return self.project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT

    def resolved_entity(self) -> str | None:
        return self.entity or os.environ.get("WANDB_ENTITY") or None


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def start(settings: WandbSettings, name: str, config: dict[str, Any], folder: Path, run_id: str | None = None, job_type: str = "train") -> Any:
    """A W&B run (None when off); `run_id` continues that run (resume="allow")."""
    if not settings.on:
        return None
    try:
        import wandb
    except ImportError as err:
        raise UserError("--wandb was asked for but wandb is not installed; pip install wandb or drop --wandb") from err
    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        return wandb.init(project=settings.resolved_project(), entity=settings.resolved_entity(), name=name, config=config,
                          mode=cast(Literal["offline", "online"], settings.mode),  # one of MODES (checked at construction), not "off" here
                          dir=str(folder), id=run_id, resume="allow" if run_id else None, job_type=job_type, reinit=True)
    except Exception as err:  # wandb raises many types (no key, no network)
        raise UserError(f"wandb could not start in {settings.mode} mode ({type(err).__name__}: {err}); use --wandb offline or drop --wandb") from err


def log_evaluation(settings: WandbSettings, name: str, config: dict[str, Any], headline: str, rows: Iterable[Any], folder: Path) -> str | None:
    """One W&B run (job type "evaluate") for one evaluation's results: the test averages of each
    point as summary metrics (`<point>/<metric>`), every row in a table; returns its run id."""
    run = start(settings, name, config, folder, job_type="evaluate")
    if run is None:
        return None
    import wandb

    rows = list(rows)
    for r in rows:
        if r.task is None and r.split == "test" and "val_curve" not in (r.point or ""):
            run.summary[f"{r.point or 'all'}/{r.metric}"] = r.value
    run.summary["headline"] = headline
    run.log({"rows": wandb.Table(columns=list(ROW_COLUMNS), data=[[getattr(r, c) for c in ROW_COLUMNS] for r in rows])})
    run_id = run.id
    run.finish()
    return run_id
