"""How a study ends when a stop signal reached it (the sequential executor and the worker pool)."""

from __future__ import annotations

from typing import NoReturn

from ..stop_signals import EXIT_PREEMPTED


def stop_for_signal(detail: str = "") -> NoReturn:
    """A stop signal reached the study: a run under way saved its state and finished steps stay;
    exit EXIT_PREEMPTED, so neither a scheduler nor a user takes the study for finished."""
    print(f"stopped by a signal: finished steps are kept, a stopped run saved its state; run the same command again to resume{detail}", flush=True)
    raise SystemExit(EXIT_PREEMPTED)
