"""Expensive work is visible and stoppable, cheap checks come first (issue 29), each step run as
a user runs it (its own process, a fresh folder):

- an implicit pretraining of the embedded TinyCLIP says so in one line with its estimated time,
  and SIGTERM/SIGINT stop the corpus build and the training within seconds (exit 75 / 130), keeping
  nothing (restartable: the same command starts it again);
- `--pretrained none` with missing data writes no theta_0 and no run folder;
- with stdout not a terminal, training prints plain periodic lines (step, loss, lr, images/s, ETA)
  and an end-of-run summary, never tqdm's carriage returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(process: subprocess.Popen, marker: str, timeout: float = 300) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    process.kill()
    raise AssertionError(f"never printed {marker!r}: {''.join(lines)[-3000:]}")


def stopped_within(process: subprocess.Popen, sig: int, seconds: float) -> tuple[int, str, float]:
    sent = time.monotonic()
    process.send_signal(sig)
    rest, _ = process.communicate(timeout=seconds + 60)
    return process.returncode, rest, time.monotonic() - sent


def test_an_implicit_pretraining_is_announced_and_sigterm_stops_its_corpus_build(tmp_path):
    argv = [sys.executable, str(REPO / "src" / "finetune.py"), "--task", "Digits", "--model", "TinyCLIP", "--pretrained", "embedded",
            "--cache-dir", str(tmp_path / "cache"), "--data-location", str(tmp_path / "data"), "--checkpoint-root", str(tmp_path / "ck"),
            "--results-root", str(tmp_path / "res"), "--max-steps", "2"]
    process = start(argv, tmp_path)
    lines = read_until(process, "not cached")
    notice = lines[-1]
    assert "192,000-pair corpus and pretraining 2700 steps" in notice and "idle CPU cores" in notice and "stops it within seconds" in notice
    time.sleep(2)  # inside the corpus's render threads
    code, rest, seconds = stopped_within(process, signal.SIGTERM, 15)
    assert code == 75 and seconds < 15, (code, seconds, rest)
    assert "stopped by a signal while building the pretraining corpus; nothing of it was kept" in rest
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert not (tmp_path / "ck").exists()  # no theta_0, no empty run folder


PRETRAIN = """
import sys
from task_arithmetic.embedded.presets import PretrainConfig
from task_arithmetic.embedded.pretrain import pretrain_clip
from task_arithmetic.errors import cli_entry
from task_arithmetic.training.preemption import StopFlag

@cli_entry
def main():
    with StopFlag():  # as a fine-tuning run holds it while theta_0's weights are made
        pretrain_clip(PretrainConfig(corpus_size=400, steps=100000, batch_size=8, warmup=2), progress=False)

main()
"""


def test_sigterm_and_ctrl_c_stop_pretraining_within_a_step(tmp_path):
    for sig, code in ((signal.SIGTERM, 75), (signal.SIGINT, 130)):
        process = start([sys.executable, "-c", PRETRAIN], tmp_path)
        lines = read_until(process, "pretrain TinyCLIP: step 1/100000")
        assert "images/s" in lines[-1] and "ETA" in lines[-1] and "lr" in lines[-1]
        returned, rest, seconds = stopped_within(process, sig, 10)
        assert returned == code and seconds < 10, (sig, returned, seconds, rest)
        assert "Traceback" not in rest


def test_missing_data_is_reported_before_theta0_or_a_run_folder_is_written(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "src" / "finetune.py"), "--task", "Cars", "--model", "ViT-B-32", "--pretrained", "none",
                           "--data-location", str(tmp_path / "no-data"), "--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res")],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: Cars data not found under --data-location")
    assert not (tmp_path / "ck").exists() and not (tmp_path / "res").exists()  # not the 336 MB theta_0, no empty folders


def test_a_redirected_run_logs_plain_periodic_lines_and_a_summary(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "src" / "finetune.py"), "--task", "Digits", "--model", "TinyCLIP", "--pretrained", "none",
                           "--data-location", str(tmp_path / "data"), "--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res"),
                           "--max-steps", "3", "--batch-size", "16"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    first, last = [line for line in lines if "step 1/3" in line][0], [line for line in lines if "step 3/3" in line][0]
    for line in (first, last):
        assert line.startswith("Digits standard: step") and " loss " in line and " lr " in line and "images/s ETA" in line
    assert any(line.startswith("Digits standard: 3 steps in ") and "last step: loss" in line for line in lines)
    assert lines[-1].startswith("saved ")
