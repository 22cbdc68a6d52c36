"""Every script's --help, as a user runs it: instant (no torch, open_clip, transformers, ...
imported: tests/help_without_heavy_imports.py makes them unimportable), with the flags'
defaults, the tasks and benchmarks, the examples and the exit codes. Timings are measured by
benchmarks/bench_help.py, not here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["finetune", "evaluate", "run_study", "run_embedded", "merge", "report", "import_checkpoints", "export_checkpoints",
           "prepare_datasets", "download_weights", "pretrain_embedded"]


def light(*argv: str) -> subprocess.CompletedProcess:
    """The script run with every heavy library unimportable."""
    return subprocess.run([sys.executable, str(REPO / "tests" / "help_without_heavy_imports.py"), *argv],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_every_script_answers_help_without_heavy_imports():
    # one process for all of them would let one script's imports hide another's: one each
    texts = {}
    for script in SCRIPTS:
        done = light(f"src/{script}.py", "--help")
        assert done.returncode == 0, f"{script}: {done.stderr[-2000:]}"
        assert "exit codes" in done.stdout, script
        texts[script] = done.stdout
    done = light("src/evaluate.py", "negation", "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    texts["evaluate negation"] = done.stdout
    # the tasks and benchmarks, where a script takes them
    for script in ("finetune", "run_study", "evaluate negation", "prepare_datasets"):
        assert "real20: SUN397, Cars" in texts[script] and "embedded: Digits" in texts[script], script
    # defaults shown: the model, weights, and the paper's recipe where the task gives none
    finetune = " ".join(texts["finetune"].split())
    for shown in ("(default ViT-B-32)", "(default openai)", "the paper's 1e-05", "the paper's 128", "(default 0)", "(default 250)"):
        assert shown in finetune, shown
    # examples and exit codes
    assert "python src/finetune.py --task Cars --reg tau_jp" in texts["finetune"]
    assert "75  stopped by SIGTERM" in texts["run_study"]
    assert "--control-ratio" in texts["evaluate negation"] and "(default 0.95)" in " ".join(texts["evaluate negation"].split())
    for name in ("single_task", "addition", "merging"):
        assert name in texts["evaluate"]


@pytest.mark.parametrize("argv, message", [
    (["src/finetune.py", "--task", "Cars", "--lr", "nan"], "--lr: expected a finite number"),
    (["src/finetune.py", "--task", "Cars", "--reg", "l2_sp", "--tak-beta", "3"], "error: --tak-beta only applies to --reg tak"),
    (["src/run_study.py", "--recipes", "nope"], "error: unknown recipe 'nope'"),
])
def test_flag_errors_come_before_heavy_imports(argv, message):
    done = light(*argv)
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
