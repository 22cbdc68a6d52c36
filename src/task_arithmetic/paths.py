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

Every name that becomes one component of these paths (model id, task, run, evaluation, and the
names scripts take for other files: an import's weights name, a merge's method and pools) goes
through `check_name`, so no name can climb out of its root or hide among the suite's temporaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT_ROOT = REPO_ROOT / "checkpoints"
DEFAULT_RESULTS_ROOT = REPO_ROOT / "results"
DEFAULT_DATA_LOCATION = REPO_ROOT / "data"
MAX_NAME_LENGTH = 200  # bytes; file systems allow 255, and the suite adds suffixes (.safetensors, .lock, temporaries)


def _name_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return "it is empty"
    if value in (".", ".."):
        return "it refers to a folder itself"
    if any(c in value for c in "/\\"):
        return "it contains a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "it contains a control character"
    if value.startswith("."):
        return "it starts with '.' (hidden names are the suite's locks and temporaries)"
    if value != value.strip():
        return "it starts or ends with a space"
    if len(value.encode("utf-8")) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} bytes"
    return None


def check_name(kind: str, value: str) -> str:
    """`value` if it can be one folder or file name, else a UserError naming `kind` (e.g. "--tag")."""
    problem = _name_problem(value)
    if problem is not None:
        raise UserError(f"{kind} {value!r} cannot be used as a folder or file name: {problem}; use letters, digits and - _ . + (e.g. 'public')")
    return value


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
        return Path(self.checkpoint_root) / check_name("model id", model_id)

    def zeroshot(self, model_id: str) -> Path:
        return self.model_dir(model_id) / "zeroshot.safetensors"

    def head(self, model_id: str, task: str) -> Path:
        return self.model_dir(model_id) / "heads" / f"{check_name('task', task)}.safetensors"

    def run_dir(self, model_id: str, task: str, run: str) -> Path:
        return self.model_dir(model_id) / check_name("task", task) / check_name("run", run)

    def finetuned(self, model_id: str, task: str, run: str) -> Path:
        return self.run_dir(model_id, task, run) / "finetuned.safetensors"

    def train_state(self, model_id: str, task: str, run: str) -> Path:
        return self.run_dir(model_id, task, run) / "train_state"

    def train_log(self, model_id: str, task: str, run: str) -> Path:
        return self.run_dir(model_id, task, run) / "log.jsonl"

    def results(self, model_id: str, run: str, evaluation: str) -> Path:
        names = (check_name("model id", model_id), check_name("run", run), check_name("evaluation", evaluation))
        return Path(self.results_root) / names[0] / names[1] / f"{names[2]}.json"

    def report_dir(self, model_id: str) -> Path:
        return Path(self.results_root) / check_name("model id", model_id) / "report"
