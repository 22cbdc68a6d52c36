"""benchmarks/gpu_check.sh: argument handling, the runner, the results files, and its cheapest
step (the environment) on the CPU. The GPU sizes run only on a GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from test_training_support import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402
from gpu_check_report import results_name  # noqa: E402


def run(capsys, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        sys.exit(gpu_check.main(list(argv)))
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--device", "cpu", "--quick", "--steps", "env,nope"], "unknown step(s) nope"),
    (["--device", "cpu"], "add --quick"),
    (["--device", "cpu", "--quick", "--budget", "0"], "--budget must be a positive"),
])
def test_bad_arguments_are_one_line_exit_2(capsys, tmp_path, argv, says):
    code, err = run(capsys, *argv, "--results-dir", str(tmp_path))
    assert code == 2 and err.startswith("error: ") and says in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_says_what_to_do(capsys, tmp_path):
    code, err = run(capsys, "--results-dir", str(tmp_path))
    assert code == 2 and "no CUDA GPU is visible" in err and "--device cpu --quick" in err


def test_environment_step_writes_the_results_files(capsys, tmp_path):
    code, _ = run(capsys, "--device", "cpu", "--quick", "--steps", "env", "--results-dir", str(tmp_path))
    assert code == 0
    data = json.loads((tmp_path / "cpu-quick.json").read_text())
    (env,) = data["steps"]
    assert env["status"] == "ok" and data["header"]["torch"] == torch.__version__
    assert {f["name"]: f["value"] for f in env["figures"]}["torch"] == torch.__version__
    table = (tmp_path / "cpu-quick.md").read_text()
    assert "| 1. environment | torch | " + torch.__version__ in table and "command: `bash benchmarks/gpu_check.sh --device cpu" in table


def test_a_failing_step_is_recorded_and_the_next_still_runs(capsys, tmp_path, monkeypatch):
    def broken(ctx, record):
        record.add("partial", 1.5, "s")
        raise ValueError("planted failure")

    monkeypatch.setitem(gpu_check.STEPS, "tests", ("2. CUDA tests", broken))
    code, _ = run(capsys, "--device", "cpu", "--quick", "--steps", "tests,env", "--results-dir", str(tmp_path))
    assert code == 1
    tests, env = json.loads((tmp_path / "cpu-quick.json").read_text())["steps"]
    assert tests["status"] == "failed" and "planted failure" in tests["message"] and tests["figures"][0]["value"] == 1.5
    assert env["status"] == "ok"
    assert "planted failure" in (tmp_path / "cpu-quick.log").read_text()  # the traceback goes to the log


def test_a_spent_budget_skips_the_remaining_steps_and_fails(capsys, tmp_path):
    code, _ = run(capsys, "--device", "cpu", "--quick", "--steps", "env", "--budget", "1e-9", "--results-dir", str(tmp_path))
    assert code == 1
    (env,) = json.loads((tmp_path / "cpu-quick.json").read_text())["steps"]
    assert env["status"] == "skipped" and "budget" in env["message"]


def test_results_are_named_after_the_gpu():
    assert results_name("NVIDIA H200", quick=False) == "gpu-nvidia-h200"
    assert results_name("NVIDIA H100 80GB HBM3", quick=False) == "gpu-nvidia-h100-80gb-hbm3"
    assert results_name(None, quick=True) == "cpu-quick"


def test_shell_entry_passes_arguments_through():
    out = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cpu", "--quick", "--steps", "bogus"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [out.stderr.strip()] and "unknown step(s) bogus" in out.stderr
