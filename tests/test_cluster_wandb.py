"""Cluster and Weights & Biases (issue 29), as a user runs them: the Slurm dry run's GPU default
and warning, and a fine-tuning run logged to W&B (offline, the real wandb) that is stopped and
resumed into the same W&B run, with its project from WANDB_PROJECT, then its evaluation logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from test_visible_work import read_until, stopped_within

REPO = Path(__file__).resolve().parents[1]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # conftest switches wandb off for in-process tests
    return {**out, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", **extra}


def test_slurm_jobs_get_a_gpu_by_default_and_a_cuda_study_without_one_is_warned_about(tmp_path, capsys):
    flags = ["--launcher", "slurm", "--dry-run", "--tasks", "Cars,DTD", "--reg", "tau_jp", "--checkpoint-root", str(tmp_path / "ck"),
             "--data-location", str(tmp_path / "data"), "--log-dir", str(tmp_path / "logs")]
    no_gpu = subprocess.run([sys.executable, "src/run_study.py", *flags, "--gpus", "0"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert no_gpu.returncode == 0, no_gpu.stderr[-2000:]
    assert "--gres=gpu" not in no_gpu.stdout and "warning: --gpus 0 with --device auto: the jobs get no GPU" in no_gpu.stderr
    from run_study import main, slurm_gpus

    main.__wrapped__(flags)  # the default, in this process (the same code path as above)
    default = capsys.readouterr()
    assert "--gres=gpu:1" in default.out and "warning" not in default.err
    assert slurm_gpus(None, "cpu") == 0 and slurm_gpus(None, "cuda:1") == 1 and slurm_gpus(2, "auto") == 2


def test_a_resumed_run_continues_its_wandb_run_and_evaluations_are_logged(tmp_path):
    flags = ["--task", "Digits", "--model", "TinyCLIP", "--pretrained", "none", "--data-location", str(tmp_path / "data"),
             "--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res"), "--batch-size", "8", "--wandb", "offline"]
    finetune = [sys.executable, str(REPO / "src" / "finetune.py"), *flags, "--max-steps", "60", "--save-every", "1"]
    state = tmp_path / "ck" / "TinyCLIP-random" / "Digits" / "standard" / "train_state"
    process = subprocess.Popen(finetune, cwd=tmp_path, env=env(WANDB_PROJECT="from-env"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    read_until(process, "Digits standard: step 1/60")
    code, rest, _ = stopped_within(process, signal.SIGTERM, 60)
    assert code == 75, rest
    first = json.loads((state / "wandb.json").read_text())
    assert first["project"] == "from-env"  # the standard environment variable
    done = subprocess.run(finetune, cwd=tmp_path, env=env(WANDB_PROJECT="from-env"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "resuming at step" in done.stderr, done.stderr[-2000:]
    runs = sorted((state.parent / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and {r.name.rsplit("-", 1)[1] for r in runs} == {first["id"]}  # both processes logged to one W&B run
    assert not state.exists()  # finished: the state (and the id with it) is gone; --force starts a new W&B run

    evaluate = [sys.executable, str(REPO / "src" / "evaluate.py"), "single_task", "--tasks", "Digits", "--model", "TinyCLIP", "--pretrained", "none",
                "--data-location", str(tmp_path / "data"), "--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res"),
                "--max-eval-samples", "32", "--wandb", "offline", "--wandb-project", "from-flag"]
    done = subprocess.run(evaluate, cwd=tmp_path, env=env(WANDB_PROJECT="from-env"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    logged = list((tmp_path / "res" / "TinyCLIP-random" / "standard" / "wandb").glob("offline-run-*/files/media/table/rows_*.table.json"))
    assert len(logged) == 1
    table = json.loads(logged[0].read_text())
    assert table["columns"] == ["task", "split", "point", "alpha", "metric", "value"]
    assert ["Digits", "test", "finetuned", None, "accuracy"] in [row[:5] for row in table["data"]]
