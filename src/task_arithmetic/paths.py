"""The one path scheme shared by training, evaluation, merging and reporting.

checkpoints/<model_id>/zeroshot.safetensors               pre-trained image encoder (theta_0)
checkpoints/<model_id>/heads/<task>.safetensors           frozen zero-shot classification heads
checkpoints/<model_id>/<task>/<run>/finetuned.safetensors fine-tuned weights (+ .json metadata)
checkpoints/<model_id>/<task>/<run>/train_state/          resumable training state
checkpoints/<model_id>/<task>/<run>/log.jsonl             per-step training log
results/<model_id>/<run>/<evaluation>.json                evaluation results
results/<model_id>/report/                                tables and plots

`<run>` names the fine-tuning recipe: `standard`, `linear`, `linear-tau_jp`,
`standard-tau_jp`, `linear-tau_jp_strict`, ... (the rules are in recipes/names.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT_ROOT = REPO_ROOT / "checkpoints"
DEFAULT_RESULTS_ROOT = REPO_ROOT / "results"
DEFAULT_DATA_LOCATION = REPO_ROOT / "data"


def check_folder_flag(flag: str, path: str | Path) -> None:
    """A root given on the command line must be a folder (or not exist yet), never a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; pass a folder (it is created if missing)")


@dataclass(frozen=True)
class Layout:
    """Resolves every on-disk location from the two roots."""

    checkpoint_root: Path = DEFAULT_CHECKPOINT_ROOT
    results_root: Path = DEFAULT_RESULTS_ROOT

    def model_dir(self, model_id: str) -> Path:
        return Path(self.checkpoint_root) / model_id

    def zeroshot(self, model_id: str) -> Path:
        return self.model_dir(model_id) / "zeroshot.safetensors"

    def head(self, model_id: str, task: str) -> Path:
        return self.model_dir(model_id) / "heads" / f"{task}.safetensors"

    def run_dir(self, model_id: str, task: str, run: str) -> Path:
        return self.model_dir(model_id) / task / run

    def finetuned(self, model_id: str, task: str, run: str) -> Path:
        return self.run_dir(model_id, task, run) / "finetuned.safetensors"

    def train_state(self, model_id: str, task: str, run: str) -> Path:
        return self.run_dir(model_id, task, run) / "train_state"

    def train_log(self, model_id: str, task: str, run: str) -> Path:
        return self.run_dir(model_id, task, run) / "log.jsonl"

    def results(self, model_id: str, run: str, evaluation: str) -> Path:
        return Path(self.results_root) / model_id / run / f"{evaluation}.json"

    def report_dir(self, model_id: str) -> Path:
        return Path(self.results_root) / model_id / "report"
