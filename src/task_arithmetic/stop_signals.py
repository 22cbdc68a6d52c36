"""The signals that ask a run or a study to stop with its state saved (Slurm's pre-emption and
time-limit warnings), and the exit code of a process stopped that way (75, EX_TEMPFAIL: "try
again later"). Standard library only: entry scripts import it before anything slow.

Every handler of these signals also notes the request process-wide (`note_stop`), so long work
that keeps no resumable state and runs outside the training loop (building the pretraining
corpus, pretraining the embedded TinyCLIP, in worker threads too) checks `raise_if_stopped`
every few hundred milliseconds and gives up with `StopRequested`: nothing half-written is kept,
and the same command starts that work again from its beginning.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_PREEMPTED = 75

_requested = threading.Event()


class StopRequested(Exception):
    """A stop signal reached work that cannot save a state (it is abandoned and will start again)."""

    def __init__(self, what: str):
        super().__init__(f"stopped by a signal while {what}; nothing of it was kept: run the same command again to start it over")
        self.what = what


def note_stop() -> None:
    """Called by every stop-signal handler (and by code that stops its own work on Ctrl-C)."""
    _requested.set()


def stop_requested() -> bool:
    return _requested.is_set()


def clear_stop() -> None:
    """A new piece of work in the same process (a library caller's next run) starts unstopped."""
    _requested.clear()


def raise_if_stopped(what: str) -> None:
    """StopRequested if a stop signal arrived: call between small pieces of long work."""
    if _requested.is_set():
        raise StopRequested(what)
