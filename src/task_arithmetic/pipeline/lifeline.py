"""A study's worker process dies with the study and leaves its outputs as a stop signal would.

Why: a worker waits for its next unit on a queue whose other end is the study's process. When
that process is killed outright (SIGKILL, the OOM killer), the worker would wait for ever, with
a gigabyte of model and, if it was running a unit, that unit's lock. So each worker
  - asks Linux to send it SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), and
  - watches its parent's pid from a thread (every platform; it also catches a parent that died
    before the request was made), sending itself the same SIGTERM.
The SIGTERM is a stop signal like the one the study forwards: a fine-tuning run saves its state
and returns (its own handler, training/preemption.py), an evaluation unwinds (its locks are
released and its temporaries removed), an idle worker exits at once. Once no unit is running
any more, the orphaned worker exits with EXIT_PREEMPTED.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from typing import Iterator

from ..stop_signals import EXIT_PREEMPTED, STOP_SIGNALS, note_stop

_PR_SET_PDEATHSIG = 1
POLL_S = 0.5
GRACE_S = 600.0  # the longest an orphaned unit may take to save and return before the worker exits anyway

_busy = threading.Event()  # a unit is running in this worker
_stopping = threading.Event()  # a stop signal has been turned into an exception once


def _parent_death_signal(signum: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watchdog thread covers it


def _on_stop(signum: int, frame: object) -> None:
    note_stop()  # threads of long work (the pretraining corpus) stop at their next check
    if not _busy.is_set():
        os._exit(EXIT_PREEMPTED)  # idle: nothing to save, nothing held
    if not _stopping.is_set():  # once: a repeated signal must not interrupt the unwinding
        _stopping.set()
        raise SystemExit(EXIT_PREEMPTED)


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    if _busy.is_set():
        os.kill(os.getpid(), signal.SIGTERM)  # as the parent's death signal would (harmless if it came)
    deadline = time.monotonic() + GRACE_S
    while _busy.is_set() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    os._exit(EXIT_PREEMPTED)


def die_with_parent(parent_pid: int) -> None:
    """Call first in a worker's initializer: stop signals end a unit cleanly, and the worker
    follows its parent (`parent_pid`, passed from the parent) when that dies."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _on_stop)
    _parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # gone before the request above was in place
        os._exit(EXIT_PREEMPTED)
    threading.Thread(target=_watch, args=(parent_pid,), name="study-lifeline", daemon=True).start()


@contextlib.contextmanager
def running_unit() -> Iterator[None]:
    """Mark the block as a unit at work: a stop signal then unwinds it instead of exiting at once."""
    _stopping.clear()
    _busy.set()
    try:
        yield
    finally:
        _busy.clear()
