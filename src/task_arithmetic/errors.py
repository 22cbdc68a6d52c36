"""User-facing errors: one line, the problem and the fix, non-zero exit, no traceback."""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

from .stop_signals import EXIT_PREEMPTED, StopRequested

F = TypeVar("F", bound=Callable[..., object])

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input the user can fix. The message must name the problem and the fix."""


def cli_entry(main: F) -> F:
    """Wrap a script's main(): a UserError becomes `error: <message>` on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
            print(f"error: {message}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except StopRequested as err:  # long work without a resumable state, stopped by SIGTERM/SIGUSR1
            print(err, file=sys.stderr)
            sys.exit(EXIT_PREEMPTED)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
