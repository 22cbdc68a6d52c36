"""SIGTERM / SIGUSR1 -> finish the current step, save the resumable state, exit with EXIT_PREEMPTED.

Slurm sends SIGTERM before killing a pre-empted or timed-out job, and the signal chosen with
`sbatch --signal=B:USR1@<seconds>` ahead of the time limit. The handler only raises a flag: the
loop checks it between optimiser steps, so a state is never saved half-way through a step.
A pre-empted run exits with EXIT_PREEMPTED (75, EX_TEMPFAIL: "try again later"), never 0, so
`--dependency=afterok` jobs do not start on an unfinished run; re-running the same command
resumes it (scripts/slurm/unit.sbatch requeues the job on that code).
The flag is held for the whole run: a signal during set-up saves nothing new and exits
EXIT_PREEMPTED; one during the last step or the final save lets the save complete, and the
run ends finished (exit 0), since nothing would be left to resume.
Before that, from the first line of an entry script (its imports take seconds), a stop signal
ends the process with EXIT_PREEMPTED too (`exit_preempted_on_stop_signals`), never 143.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from ..stop_signals import EXIT_PREEMPTED, STOP_SIGNALS, clear_stop, note_stop

__all__ = ["EXIT_PREEMPTED", "STOP_SIGNALS", "StopFlag"]


class StopFlag:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._depth = 0

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        note_stop()  # long work outside the loop (pretraining theta_0's weights) stops too

    def __enter__(self) -> "StopFlag":
        # Re-entrant: the run holds the flag from set-up to the final save, the loop enters it again.
        self._depth += 1
        if self._depth > 1:
            return self
        clear_stop()
        # Signal handlers can only be installed from the main thread (a library caller may
        # run us elsewhere; then the process's own handling stays in charge).
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()


def exit_preempted_on_stop_signals() -> None:
    """Until a run or a study installs its own handling: a stop signal exits EXIT_PREEMPTED.

    An entry script calls this first, before its imports (seconds of torch and open_clip), so a
    scheduler's SIGTERM at start-up is a "try again" and not a crash. The SystemExit unwinds
    normally: locks are released and half-written temporaries removed on the way out.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        note_stop()  # worker threads of long work (the pretraining corpus) stop at their next check
        for sig in STOP_SIGNALS:  # a repeated signal must not interrupt the clean-up on the way out
            signal.signal(sig, lambda *args: None)
        print(f"stopped by {signal.Signals(signum).name}: finished steps are kept; run the same command again to resume", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_PREEMPTED)

    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, stop)
