"""Interruptions, divergence, finished runs and the on-disk formats of the fine-tuning engine."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from test_training_support import NAN_FROM, REPO, finetune_command, register_tasks, run_cli, subprocess_env

from task_arithmetic.data.splits import load_dataset
from task_arithmetic.errors import UserError
from task_arithmetic.io import load_weights, read_json
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.paths import Layout
from task_arithmetic.training import FinetuneConfig, run_finetune
from task_arithmetic.training.preemption import EXIT_PREEMPTED

register_tasks()
SPEC = ModelSpec("TinyCLIP")


def roots(tmp: Path) -> dict:
    return dict(checkpoint_root=str(tmp / "ck"), results_root=str(tmp / "res"), data_location=str(tmp / "data"))


def toy_config(tmp: Path, **kw) -> FinetuneConfig:
    return FinetuneConfig(task=kw.pop("task", "TrainToyA"), model="TinyCLIP", pretrained=None, device="cpu", progress=False, **roots(tmp), **kw)


def log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def wait_for_steps(process: subprocess.Popen, log: Path, steps: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"run ended (rc {process.returncode}) before step {steps}: {process.stderr.read()}")
        lines = log.read_text().splitlines() if log.is_file() else []
        if len(lines) >= steps:
            return
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"no step {steps} within {timeout}s")


def test_sigterm_and_sigkill_then_rerun_gives_bit_identical_weights(tmp_path):
    def flags(root: Path) -> list[str]:
        return ["--task", "TrainToyA", "--reg", "tau_jp", "--batch-size", "8", "--penalty-batch", "4", "--max-steps", "24",
                "--save-every", "4", "--seed", "1", "--checkpoint-root", str(root / "ck"), "--results-root", str(root / "res"),
                "--data-location", str(tmp_path / "data")]

    # The uninterrupted reference runs as a subprocess too: the same thread set-up, so the same
    # floating-point kernels (a process that once used more threads may pick other ones).
    reference = subprocess.Popen(finetune_command(*flags(tmp_path / "ref")), cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    layout = Layout(tmp_path / "run" / "ck")
    log = layout.train_log(SPEC.model_id, "TrainToyA", "linear-tau_jp")
    state = layout.train_state(SPEC.model_id, "TrainToyA", "linear-tau_jp")

    first = subprocess.Popen(finetune_command(*flags(tmp_path / "run")), cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    wait_for_steps(first, log, 6)
    first.send_signal(signal.SIGTERM)  # what Slurm sends before pre-emption
    assert first.wait(timeout=60) == EXIT_PREEMPTED
    stopped_at = read_json(state / "state.json")["step"]
    assert stopped_at == len(log_records(log)) >= 6  # saved right after the step it was in
    # The state is safetensors + JSON only (nothing to unpickle).
    names = sorted(p.name for p in state.iterdir())
    assert names == ["state.json", f"tensors-{stopped_at:09d}.json", f"tensors-{stopped_at:09d}.safetensors"]
    saved, _ = load_weights(state / names[2])
    assert {k.split(".")[0] for k in saved} == {"model", "optim", "rng"}

    second = subprocess.Popen(finetune_command(*flags(tmp_path / "run")), cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    wait_for_steps(second, log, stopped_at + 5)
    second.kill()  # SIGKILL: no chance to save
    assert second.wait(timeout=30) == -signal.SIGKILL
    assert not layout.finetuned(SPEC.model_id, "TrainToyA", "linear-tau_jp").is_file()

    final = run_cli(*flags(tmp_path / "run"))
    assert final.returncode == 0, final.stderr
    assert "resuming at step" in final.stderr
    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    ours, meta = load_weights(layout.finetuned(SPEC.model_id, "TrainToyA", "linear-tau_jp"))
    expected, _ = load_weights(Layout(tmp_path / "ref" / "ck").finetuned(SPEC.model_id, "TrainToyA", "linear-tau_jp"))
    assert ours.keys() == expected.keys()
    for key in expected:
        assert torch.equal(ours[key], expected[key]), key
    records = log_records(log)
    ref_records = log_records(Layout(tmp_path / "ref" / "ck").train_log(SPEC.model_id, "TrainToyA", "linear-tau_jp"))
    assert [r["step"] for r in records] == list(range(1, 25))
    assert [(r["loss"], r["tau_jp"]) for r in records] == [(r["loss"], r["tau_jp"]) for r in ref_records]
    assert meta["steps"] == 24 and not state.exists()  # the resumable state is dropped once finished


def test_sigterm_to_every_process_of_the_job_with_loader_workers_still_saves(tmp_path):
    # Slurm signals the whole job step: the data-loader workers get the SIGTERM too.
    flags = ["--task", "TrainToyA", "--reg", "tau_jp", "--batch-size", "8", "--penalty-batch", "4", "--max-steps", "400",
             "--save-every", "1000", "--num-workers", "2", "--checkpoint-root", str(tmp_path / "ck"),
             "--results-root", str(tmp_path / "res"), "--data-location", str(tmp_path / "data")]
    run = subprocess.Popen(finetune_command(*flags), cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE, text=True, start_new_session=True)
    layout = Layout(tmp_path / "ck")
    wait_for_steps(run, layout.train_log(SPEC.model_id, "TrainToyA", "linear-tau_jp"), 2)
    assert len(subprocess.run(["pgrep", "-g", str(run.pid)], capture_output=True, text=True).stdout.split()) > 1  # workers are up
    os.killpg(run.pid, signal.SIGTERM)
    assert run.wait(timeout=60) == EXIT_PREEMPTED, run.stderr.read()
    assert "state saved at step" in run.stderr.read()
    assert read_json(layout.train_state(SPEC.model_id, "TrainToyA", "linear-tau_jp") / "state.json")["step"] >= 2


def first_nan_step(tmp: Path, seed: int, batch: int) -> int:
    train = load_dataset("TrainToyNaN", "train", tmp)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()  # epoch 0
    bad = {pos for pos, i in enumerate(order) if train.indices[i] >= NAN_FROM}
    return min(bad) // batch + 1


def test_nan_loss_stops_with_one_line_and_keeps_last_good_state(tmp_path):
    seed = next(s for s in range(50) if first_nan_step(tmp_path, s, 16) > 2)
    step = first_nan_step(tmp_path, seed, 16)
    cfg = toy_config(tmp_path, task="TrainToyNaN", seed=seed, save_every=1)
    with pytest.raises(UserError, match=rf"training diverged: the loss is nan at step {step} .*step {step - 1}") as info:
        run_finetune(cfg)
    assert "\n" not in str(info.value)
    layout = Layout(tmp_path / "ck")
    state = layout.train_state(SPEC.model_id, "TrainToyNaN", "standard")
    assert read_json(state / "state.json")["step"] == step - 1
    tensors, _ = load_weights(state / read_json(state / "state.json")["tensors"])
    assert all(torch.isfinite(t.float()).all() for k, t in tensors.items() if k.startswith("model."))
    assert not layout.finetuned(SPEC.model_id, "TrainToyNaN", "standard").is_file()
    # Re-running resumes from that state and meets the same batch again; other settings are refused.
    with pytest.raises(UserError, match=rf"loss is nan at step {step} "):
        run_finetune(cfg)
    with pytest.raises(UserError, match=r"made with other settings \(lr: 0.001 -> 0.002\).*--force"):
        run_finetune(toy_config(tmp_path, task="TrainToyNaN", seed=seed, save_every=1, lr=2e-3))


def test_finished_run_is_skipped_unless_forced_and_metadata_is_complete(tmp_path, capsys):
    first = run_finetune(toy_config(tmp_path, max_steps=2))
    assert first.status == "finished"
    tensors, meta = load_weights(first.path)
    zeroshot, _ = load_weights(Layout(tmp_path / "ck").zeroshot(SPEC.model_id))
    assert tensors.keys() == zeroshot.keys()
    for key in ("mode", "reg", "variant", "task", "run", "config", "seed", "code_revision", "steps"):
        assert key in meta, key
    assert (meta["mode"], meta["reg"], meta["task"], meta["run"], meta["steps"]) == ("standard", "none", "TrainToyA", "standard", 2)
    assert meta["config"]["lr"] == 1e-3 and meta["config"]["batch_size"] == 16
    assert len(meta["code_revision"]) == 40 or meta["code_revision"] == "unknown"

    again = run_finetune(toy_config(tmp_path, max_steps=2))
    assert again.status == "skipped" and "already finished" in capsys.readouterr().err
    forced = run_finetune(toy_config(tmp_path, max_steps=2, force=True))
    assert forced.status == "finished"


def test_init_from_starts_theta_at_the_checkpoint(tmp_path):
    start = run_finetune(toy_config(tmp_path, max_steps=3, lr=1e-2))
    cont = run_finetune(toy_config(tmp_path, reg="tau_jp", max_steps=1, tag="cont", init_from=str(start.path)))
    fresh = run_finetune(toy_config(tmp_path, reg="tau_jp", max_steps=1))
    cont_log = log_records(Path(cont.path).parent / "log.jsonl")
    fresh_log = log_records(Path(fresh.path).parent / "log.jsonl")
    # From theta_0 the penalty is exactly 0 at the first step; from the checkpoint it is not.
    assert fresh_log[0]["tau_jp"] == 0.0 and cont_log[0]["tau_jp"] > 0.0
    assert cont.config.run.name == "linear-tau_jp-cont"


def test_cli_bad_combination_is_one_line_exit_2(tmp_path):
    result = run_cli("--task", "TrainToyA", "--variant", "strict", "--checkpoint-root", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --variant strict only applies to --reg tau_jp; add --reg tau_jp or drop --variant"]
    assert not any(tmp_path.iterdir())  # refused before any work


def test_wandb_offline_logs_into_the_run_folder(tmp_path):
    result = run_finetune(toy_config(tmp_path, max_steps=2, wandb="offline"))
    run_dir = Path(result.path).parent
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and any(offline_runs[0].rglob("*.wandb"))
