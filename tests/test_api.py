"""The documented library API (docs/api.md) as a user runs it, and the console commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_the_documented_example_runs_as_written(tmp_path):
    """docs/api.md's example, verbatim, in a fresh folder: fine-tune, open the runs, task vectors,
    apply, merge, a registered evaluation written where src/evaluate.py writes it."""
    block = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S)[-1]
    (tmp_path / "example.py").write_text(block)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("alpha")] == ["alpha 0.0", "alpha 0.5", "alpha 1.0"]
    assert any(line.startswith("TIES: {'Digits'") for line in lines)
    assert (tmp_path / "results" / "TinyCLIP-random" / "standard" / "addition.json").is_file()
    assert (tmp_path / "checkpoints" / "TinyCLIP-random" / "Landscapes" / "standard" / "finetuned.safetensors").is_file()


def test_import_is_light_and_names_resolve_on_first_use():
    code = ("import sys, task_arithmetic as ta; assert 'torch' not in sys.modules, 'torch at import';"
            "assert ta.Layout and ta.RunId.parse('linear-tau_jp').name == 'linear-tau_jp'; assert 'torch' not in sys.modules;"
            "print(ta.Runs.__name__, ta.finetune.__name__, ta.open_runs.__name__)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO / "src")}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["Runs", "finetune", "open_runs"]


def test_every_console_command_runs_its_script():
    """pyproject.toml's [project.scripts]: each names a function of task_arithmetic.commands that runs
    src/<script>.py (checked here with --help, heavy imports blocked, as `ta-finetune --help` runs)."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"ta-finetune", "ta-evaluate", "ta-study", "ta-merge", "ta-report"} <= set(scripts)
    from task_arithmetic import commands

    for command, target in scripts.items():
        module, function = target.split(":")
        assert module == "task_arithmetic.commands" and callable(getattr(commands, function)), command
    code = ("import sys; sys.argv = ['ta-finetune', '--help']; exec(open('tests/help_without_heavy_imports.py').read().split('if __name__')[0]);"
            "sys.meta_path.insert(0, Blocker()); from task_arithmetic.commands import finetune; finetune()")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: finetune.py" in done.stdout and "exit codes" in done.stdout
