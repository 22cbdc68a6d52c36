"""The local study in worker processes (pipeline/parallel.py): the same graph as Slurm's, the same
numbers as the sequential study, and a bad --jobs refused before any work."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from test_training_support import assert_same_report

from task_arithmetic.errors import UserError
from task_arithmetic.pipeline.graph import build_graph
from task_arithmetic.pipeline.parallel import auto_jobs, parse_jobs
from task_arithmetic.pipeline.study import embedded_study, run_study
from task_arithmetic.recipes import Group, recipes_in

MODEL_ID = "TinyCLIP-embedded-smoke"


def test_units_wait_for_the_runs_they_read(smoke_study):
    cfg, _ = smoke_study
    study = embedded_study(dataclasses.replace(cfg, recipes=recipes_in(*Group)))  # matched-strength L2-SP is a field recipe
    units = {u.id: u for u in build_graph(study)}
    # prepare, every run of every trained recipe, every recipe's evaluations, the report
    assert len(units) == 1 + 3 * len(study.trainings()) + len(study.recipes) + 1
    # matched-strength L2-SP reads the same task's tau-Jp run
    assert units["finetune/Digits/standard-l2_sp"].after == ("prepare", "finetune/Digits/linear-tau_jp")
    assert units["finetune/Digits/standard"].after == ("prepare",)
    # post-hoc reads the standard runs; every evaluation waits for all the runs of its recipe
    assert set(units["evaluate/posthoc"].after) == {f"finetune/{t}/standard" for t in ("Digits", "LandUse", "Landscapes")}
    assert set(units["report"].after) == {f"evaluate/{r.name}" for r in study.recipes}
    order = list(units)
    assert all(order.index(d) < order.index(u.id) for u in units.values() for d in u.after)  # a topological order


def test_parallel_study_equals_the_sequential_one(smoke_study, tmp_path):
    """Two single-threaded workers (as the pytest process, conftest): the report's tables, claims
    and text are the sequential study's, byte for byte."""
    shared, _ = smoke_study
    shutil.copytree(shared.checkpoint_root / "pretrained", tmp_path / "checkpoints" / "pretrained")
    cfg = dataclasses.replace(shared, checkpoint_root=tmp_path / "checkpoints", results_root=tmp_path / "results", jobs=2)
    run_study(cfg)
    local, parallel = (root / MODEL_ID / "report" for root in (shared.results_root, cfg.results_root))
    tables = sorted(p.name for p in local.glob("*.csv"))
    assert tables and tables == sorted(p.name for p in parallel.glob("*.csv"))
    assert_same_report(local, parallel, tables)


def test_jobs_flag():
    assert parse_jobs("auto") is None and parse_jobs("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(UserError, match="--jobs"):
            parse_jobs(bad)
    assert auto_jobs("cpu") >= 1


def test_a_bad_jobs_value_is_one_line_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, "src/run_embedded.py", "--preset", "smoke", "--jobs", "0", "--results-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == ["error: --jobs takes a positive integer or 'auto', got '0'"]
    assert not any(tmp_path.iterdir())


def test_a_stop_signal_stops_the_parallel_study_with_every_finished_unit_kept(smoke_study, tmp_path):
    """SIGTERM to the study alone: forwarded to the workers, a run in progress saves its state,
    the study exits 75 (EX_TEMPFAIL) with no worker left behind, and the same command then completes."""
    shared, _ = smoke_study
    ck, res = tmp_path / "ck", tmp_path / "res"
    shutil.copytree(shared.checkpoint_root / "pretrained", ck / "pretrained")
    # two recipes and one evaluation keep it short; the units are the shared study's
    cmd = [sys.executable, "src/run_embedded.py", "--preset", "smoke", "--jobs", "2", "--no-progress", "--device", "cpu",
           "--recipes", "standard,linear", "--evaluations", "single_task",
           "--data-location", str(shared.data_location), "--checkpoint-root", str(ck), "--results-root", str(res)]
    study = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        def run_under_way() -> bool:  # a run folder (made when a run starts) without its finished model
            return any(p.is_dir() and not (p / "finetuned.json").exists() for p in (ck / MODEL_ID).glob("*/*"))

        while not run_under_way() and time.monotonic() < deadline and study.poll() is None:
            time.sleep(0.02)
        assert study.poll() is None, "the study ended before a run started"
        study.send_signal(signal.SIGTERM)
        out, err = study.communicate(timeout=120)
    finally:
        if study.poll() is None:
            os.killpg(study.pid, signal.SIGKILL)
    assert study.returncode == 75, err
    assert "run the same command again to resume" in out
    deadline = time.monotonic() + 15  # the pool's helper processes end as their pipes close
    while subprocess.run(["pgrep", "-s", str(study.pid)], capture_output=True).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert subprocess.run(["pgrep", "-s", str(study.pid)], capture_output=True).returncode == 1  # no process of its session left
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    for run in ("standard", "linear"):
        local, resumed = (json.loads((root / MODEL_ID / run / "single_task.json").read_text())["results"] for root in (shared.results_root, res))
        assert resumed == local, run


def test_the_sequential_study_stops_when_a_run_was_stopped(smoke_study, tmp_path, monkeypatch):
    from task_arithmetic.pipeline import graph as graph_module
    from task_arithmetic.training.loop import FinetuneResult

    shared, _ = smoke_study
    for folder in ("checkpoints", "results"):
        shutil.copytree(shared.checkpoint_root.parent / folder, tmp_path / folder)
    cfg = dataclasses.replace(shared, checkpoint_root=tmp_path / "checkpoints", results_root=tmp_path / "results")
    for task in ("Digits", "LandUse"):  # two runs to redo: the study must stop after the first stopped one
        (cfg.checkpoint_root / MODEL_ID / task / "standard" / "finetuned.json").unlink()
    calls = []

    def stopped_run(config):
        calls.append(config.task)
        return FinetuneResult("preempted", tmp_path / "none", 3, None)

    monkeypatch.setattr(graph_module, "run_finetune", stopped_run)
    with pytest.raises(SystemExit) as exit_info:
        run_study(cfg)
    assert exit_info.value.code == 75 and len(calls) == 1  # no later run or evaluation started
