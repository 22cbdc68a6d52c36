"""The console commands `pip install` puts on PATH (pyproject.toml's [project.scripts]): each one
runs its entry script exactly as `python src/<script>.py` does: same flags, output, exit codes.

The scripts are found in the source tree next to this package (a clone, or `pip install -e .`),
else in the copy a regular install keeps under <prefix>/share/task-arithmetic/scripts/.
"""

from __future__ import annotations

import runpy
import sys
import sysconfig
from pathlib import Path

from .errors import UserError, cli_entry

INSTALLED = Path("share") / "task-arithmetic" / "scripts"  # pyproject.toml's data-files


def scripts_folder() -> Path:
    beside = Path(__file__).resolve().parents[1]  # src/, which holds this package and the scripts
    if (beside / "finetune.py").is_file():
        return beside
    return Path(sysconfig.get_path("data")) / INSTALLED


@cli_entry
def _locate(script: str) -> Path:
    path = scripts_folder() / f"{script}.py"
    if not path.is_file():
        raise UserError(f"the entry script {path.name} is not installed beside the package; reinstall it (pip install -e <repository>)")
    return path


def run_script(script: str) -> None:
    """src/<script>.py as __main__ (its first line installs its own stop-signal handling)."""
    path = _locate(script)
    sys.path.insert(0, str(path.parent))  # the scripts import each other (run_embedded imports run_study)
    sys.argv[0] = str(path)
    runpy.run_path(str(path), run_name="__main__")


def finetune() -> None:
    run_script("finetune")


def evaluate() -> None:
    run_script("evaluate")


def study() -> None:
    run_script("run_study")


def embedded() -> None:
    run_script("run_embedded")


def merge() -> None:
    run_script("merge")


def report() -> None:
    run_script("report")


def import_checkpoints() -> None:
    run_script("import_checkpoints")


def export_checkpoints() -> None:
    run_script("export_checkpoints")


def prepare_data() -> None:
    run_script("prepare_datasets")


def download_weights() -> None:
    run_script("download_weights")


def pretrain_embedded() -> None:
    run_script("pretrain_embedded")
