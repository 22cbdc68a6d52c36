"""The signals that ask a run or a study to stop with its state saved (Slurm's pre-emption and
time-limit warnings), and the exit code of a process stopped that way (75, EX_TEMPFAIL: "try
again later"). Standard library only: entry scripts import it before anything slow."""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_PREEMPTED = 75
