"""Where a run reports itself: the JSONL step log, the progress bar, optional wandb, the git sha."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import UserError
from ..io import atomic_write_text
from ..storage.write_errors import translating_write_errors


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


class Progress:
    def __init__(self, enabled: bool, total: int, initial: int, description: str):
        self._bar = tqdm(total=total, initial=initial, desc=description, disable=not enabled, dynamic_ncols=True)

    def update(self, loss: float, accuracy: float, penalty: float | None) -> None:
        postfix = {"loss": f"{loss:.4f}", "acc": f"{accuracy:.3f}"}
        if penalty is not None:
            postfix["pen"] = f"{penalty:.4g}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


class WandbRun:
    """wandb, imported only when asked for (it is heavy and never required)."""

    def __init__(self, mode: str, run_name: str, config: dict[str, Any], folder: Path, resume_step: int):
        self._run = None
        if mode == "off":
            return
        try:
            import wandb
        except ImportError as err:
            raise UserError("--wandb was asked for but wandb is not installed; pip install wandb or drop --wandb") from err
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self._run = wandb.init(project="task-arithmetic", name=run_name, config=config, mode=mode, dir=str(folder), resume="allow" if resume_step else None)
        except Exception as err:  # wandb raises many types (no key, no network)
            raise UserError(f"wandb could not start in {mode} mode ({type(err).__name__}: {err}); use --wandb offline or drop --wandb") from err

    def log(self, record: dict[str, Any], step: int) -> None:
        if self._run is not None:
            self._run.log(record, step=step)

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
