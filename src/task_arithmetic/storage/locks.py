"""One writer per output: an exclusive lock file that works on shared (cluster) file systems.

The lock is a small JSON file (host, pid, start time, a random token) put in place with
os.link from a fully written temporary: link is atomic and fails when the name exists, also on
NFS, and readers never see half a lock. The holder refreshes the file's mtime (a heartbeat)
from a daemon thread. A lock is stale, and is taken over, when its holder is a dead process on
this host, or when its heartbeat is older than `stale_after` seconds (a lost node, whose pid
cannot be checked from here). Take-overs are serialised through a second O_EXCL file, so two
processes that both find a stale lock cannot both win.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError
from .write_errors import translating_write_errors

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0  # twenty missed heartbeats: generous for clock skew between cluster nodes
_TAKEOVER_STALE_S = 60.0


class LockHeld(UserError):
    """Another live process owns the output."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    started: str
    token: str
    proc_start: str = ""  # the pid's start tick on Linux, so a reused pid is not taken for the holder

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started}"


def _proc_start(pid: int) -> str:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return ""


def _alive_here(holder: Holder) -> bool:
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    current = _proc_start(holder.pid)
    return not (holder.proc_start and current and current != holder.proc_start)


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text())
        return Holder(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        # unreadable or foreign content: treat as a holder we know nothing about (judged by age)
        return Holder(host="?", pid=-1, started="?", token="?")


class FileLock:
    """Exclusive ownership of `path` (the lock file) while in the `with` block."""

    def __init__(self, path: Path, what: str, stale_after: float = STALE_AFTER_S, heartbeat: float = HEARTBEAT_S, wait_s: float | None = 0.0):
        """wait_s: how long to wait for a live holder (None: as long as it lives) before LockHeld."""
        self.path = Path(path)
        self.wait_s = wait_s
        self.waited = False
        self.what = what
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.holder: Holder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        with translating_write_errors(self.path, 4096):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        me = Holder(
            host=socket.gethostname(), pid=os.getpid(), token=uuid.uuid4().hex, proc_start=_proc_start(os.getpid()),
            started=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        )
        deadline = None if self.wait_s is None else time.monotonic() + self.wait_s
        announced = False
        attempts = 0
        while True:
            if self._try_create(me):
                self.holder = me
                self._start_heartbeat()
                return
            current = _read_holder(self.path)
            if current is None:
                continue  # released meanwhile: try again
            if self._is_stale(current):
                attempts += 1
                if attempts > 5:
                    raise LockHeld(f"could not lock {self.what}: {self.path} keeps changing hands; try again")
                self._take_over(current)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise LockHeld(
                    f"{self.what} is in use by {current.describe()} (lock {self.path}); wait for it to finish, "
                    f"or if that process is gone for good delete {self.path}"
                )
            if not announced:
                print(f"waiting for {current.describe()}, which is writing {self.what}", file=sys.stderr)
                announced = True
            self.waited = True
            time.sleep(0.5)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.holder is not None:
            current = _read_holder(self.path)
            if current is not None and current.token == self.holder.token:
                self.path.unlink(missing_ok=True)
            self.holder = None

    def _try_create(self, me: Holder) -> bool:
        tmp = self.path.with_name(f"{self.path.name}.{me.token}.new")
        try:
            with translating_write_errors(self.path, 4096):
                tmp.write_text(json.dumps(asdict(me)))
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk leaves it empty: never leave it behind
            raise
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:
            # NFS may report a failed link that did happen: the temporary then has two names.
            return tmp.stat().st_nlink == 2
        finally:
            tmp.unlink(missing_ok=True)

    def _age(self, path: Path) -> float:
        try:
            return time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _is_stale(self, holder: Holder) -> bool:
        if holder.host == socket.gethostname() and holder.pid > 0:
            return not _alive_here(holder)
        return self._age(self.path) > self.stale_after

    def _take_over(self, stale: Holder) -> None:
        guard = self.path.with_name(self.path.name + ".takeover")
        try:
            with translating_write_errors(self.path):
                fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if self._age(guard) > _TAKEOVER_STALE_S:
                guard.unlink(missing_ok=True)  # a take-over that died half-way
            time.sleep(0.05)
            return
        try:
            if _read_holder(self.path) == stale:  # nobody replaced it since we judged it stale
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)
            guard.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.heartbeat):
                try:
                    os.utime(self.path)
                except OSError:
                    pass  # a brief file-system hiccup: the next beat tries again

        self._thread = threading.Thread(target=beat, name=f"lock-heartbeat:{self.path.name}", daemon=True)
        self._thread.start()
