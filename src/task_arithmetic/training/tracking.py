"""Where a run reports itself: the JSONL step log, the progress (a bar on a terminal, plain
periodic lines in a log file or a Slurm job), optional wandb."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ..io import atomic_write_json, atomic_write_text, read_json
from ..storage.write_errors import translating_write_errors
from ..wandb_logging import WandbSettings, new_run_id, start


class StepLog:
    """One JSON object per optimiser step, appended and flushed as the run goes.

    On resume the lines after the resumed step (written after the last saved state, or cut off
    by a kill) are dropped, so the log reads as if the run had never stopped.
    """

    def __init__(self, path: Path, resume_step: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and record.get("step", 0) <= resume_step:
                    kept.append(line)
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self._handle = self.path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        with translating_write_errors(self.path, len(line)):
            self._handle.write(line)
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()


LOG_EVERY_S = 30.0  # a plain progress line at least this often (and at the first and last step)


def duration(seconds: float) -> str:
    """3h05m, 12m40s, 8s."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


class PeriodicLog:
    """Plain progress lines for logs: `<label>: step s/total loss .. lr .. images/s .. ETA ..`, at
    the first step, then every `every_s` seconds, and at the last step; a closing summary line.
    Rates and the ETA count only the steps this process took (a resumed run starts its clock at
    its resume point)."""

    def __init__(self, label: str, total: int, initial: int, images_per_step: int, every_s: float = LOG_EVERY_S, stream: TextIO | None = None):
        self.label, self.total, self.initial, self.images_per_step, self.every_s = label, total, initial, images_per_step, every_s
        self.stream = stream if stream is not None else sys.stdout
        self.step = initial
        self.started = time.perf_counter()
        self.last_line = float("-inf")
        self.last: dict[str, float] = {}

    def update(self, step: int, quiet: bool = False, **values: float | None) -> None:
        self.step = step
        self.last = {k: v for k, v in values.items() if v is not None}
        now = time.perf_counter()
        if quiet:
            return
        if step == self.initial + 1 or step >= self.total or now - self.last_line >= self.every_s:
            self.last_line = now
            self._line(now)

    def _rate(self, now: float) -> tuple[float, float]:
        done = self.step - self.initial
        elapsed = max(now - self.started, 1e-9)
        return done / elapsed, (self.total - self.step) * elapsed / max(done, 1)

    def _line(self, now: float) -> None:
        steps_per_s, eta = self._rate(now)
        values = " ".join(f"{k} {v:.4g}" for k, v in self.last.items())
        print(f"{self.label}: step {self.step}/{self.total} {values} {steps_per_s * self.images_per_step:.0f} images/s ETA {duration(eta)}",
              file=self.stream, flush=True)

    def summary(self) -> str:
        """One line for the end of the run: steps taken, wall time, rate, the last values."""
        now = time.perf_counter()
        steps_per_s, _ = self._rate(now)
        values = ", ".join(f"{k} {v:.4g}" for k, v in self.last.items())
        return (f"{self.label}: {self.step - self.initial} steps in {duration(now - self.started)} ({steps_per_s * self.images_per_step:.0f} images/s)"
                + (f"; last step: {values}" if values else ""))


class Progress:
    """A tqdm bar when enabled and stderr is a terminal; otherwise (a redirected log, a Slurm job,
    --no-progress) plain periodic lines, which a log file keeps readable (no carriage returns)."""

    def __init__(self, enabled: bool, total: int, initial: int, description: str, images_per_step: int):
        self._bar = None
        self._log = PeriodicLog(description, total, initial, images_per_step)  # also keeps the end-of-run summary
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=description, dynamic_ncols=True)

    def update(self, step: int, loss: float, accuracy: float, penalty: float | None, lr: float | None = None) -> None:
        if self._bar is not None:
            postfix = {"loss": f"{loss:.4f}", "acc": f"{accuracy:.3f}"}
            if penalty is not None:
                postfix["pen"] = f"{penalty:.4g}"
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(1)
        self._log.update(step, quiet=self._bar is not None, loss=loss, acc=accuracy, penalty=penalty, lr=lr)

    def summary(self) -> str:
        return self._log.summary()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class WandbRun:
    """A fine-tuning run's W&B run (wandb_logging.py), its id kept in `id_file` (beside the
    resumable state): a run resumed from a saved step continues that W&B run."""

    def __init__(self, settings: WandbSettings, run_name: str, config: dict[str, Any], folder: Path, resume_step: int, id_file: Path):
        self._run = None
        if not settings.on:
            return
        stored = read_json(id_file).get("id") if id_file.is_file() else None
        run_id = stored if resume_step and isinstance(stored, str) else new_run_id()  # started over: a new W&B run
        self._run = start(settings, run_name, config, folder, run_id)
        atomic_write_json(id_file, {"id": run_id, "project": settings.resolved_project(), "entity": settings.resolved_entity()})

    def log(self, record: dict[str, Any], step: int) -> None:
        if self._run is not None:
            self._run.log(record, step=step)

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
