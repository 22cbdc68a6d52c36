"""Fault injection: concurrent writers, --force failures, flipped bytes, full disks, bad input.

Each test drives a real entry point (or the one function every script goes through) into one
fault and checks that nothing is lost and the user gets one clear line.
"""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import open_clip
import pytest
import torch
from test_training_support import REPO, finetune_command, register_tasks, subprocess_env

from task_arithmetic import io as ta_io
from task_arithmetic.data.registry import parse_task_list
from task_arithmetic.errors import UserError
from task_arithmetic.evaluation import cli as eval_cli
from task_arithmetic.evaluation.tangent_cache import Direction, FeatureCache, TangentCacheStore
from task_arithmetic.io import load_weights, metadata_path, save_weights
from task_arithmetic.models.encoder import ImageEncoder, load_encoder
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.paths import Layout
from task_arithmetic.recipes import RunId
from task_arithmetic.storage.checksums import DamagedFile
from task_arithmetic.storage.locks import FileLock, LockHeld
from task_arithmetic.storage.write_errors import WriteFailed
from task_arithmetic.training import FinetuneConfig, run_finetune
from task_arithmetic.training.preemption import EXIT_PREEMPTED
from task_arithmetic.vectors.runs import finetuned_checkpoint

register_tasks()
SPEC = ModelSpec("TinyCLIP")
RUN = "standard"


def flags(root: Path, *extra: str) -> list[str]:
    return ["--task", "TrainToyA", "--batch-size", "8", "--checkpoint-root", str(root / "ck"), "--results-root", str(root / "res"),
            "--data-location", str(root / "data"), *extra]


def paths(root: Path) -> tuple[Layout, Path]:
    layout = Layout(root / "ck")
    return layout, layout.finetuned(SPEC.model_id, "TrainToyA", RUN)


def config(root: Path, **kw) -> FinetuneConfig:
    return FinetuneConfig(task="TrainToyA", model="TinyCLIP", pretrained=None, device="cpu", progress=False, batch_size=8,
                          checkpoint_root=str(root / "ck"), results_root=str(root / "res"), data_location=str(root / "data"), **kw)


def finetune_main(capsys, *argv: str) -> str:
    """src/finetune.py's main() in this process: returns the one error line of a refused run."""
    sys.path.insert(0, str(REPO / "src"))
    import finetune

    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--model", "TinyCLIP", "--pretrained", "none", "--device", "cpu", "--no-progress", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: "), err
    return line


def flip_byte(path: Path, offset_from_end: int = 16) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def wait_for(predicate, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"process ended early (rc {process.returncode}): {process.stderr.read()}")
        time.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished two-step run (θ0, head, weights) shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("finished")
    assert run_finetune(config(root, max_steps=2)).status == "finished"
    return root


# 1. one writer per run folder ------------------------------------------------------------------

def test_second_process_on_a_run_is_refused_and_a_killed_holders_lock_is_taken_over(tmp_path):
    layout, weights = paths(tmp_path)
    run_dir = weights.parent
    first = subprocess.Popen(finetune_command(*flags(tmp_path, "--max-steps", "100000", "--save-every", "100000")),
                             cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (run_dir / ".lock").is_file(), first)
        # the same task and mode with another seed writes into the same folder
        with pytest.raises(LockHeld) as err:
            run_finetune(config(tmp_path, max_steps=2, seed=1))
        for needle in (f"pid {first.pid}", socket.gethostname(), "started", str(run_dir)):
            assert needle in str(err.value)
    finally:
        first.kill()
        first.wait(timeout=30)
    assert (run_dir / ".lock").is_file()  # SIGKILL left it behind
    stale_tmp = run_dir / ".finetuned.safetensors.x1y2.tmp"
    stale_tmp.write_bytes(b"half a file")  # what a kill during a save leaves
    assert run_finetune(config(tmp_path, max_steps=2, force=True)).status == "finished"
    assert metadata_path(weights).is_file() and not (run_dir / ".lock").exists() and not stale_tmp.exists()


def test_lock_held_by_a_live_process_elsewhere_until_its_heartbeat_is_old(tmp_path):
    lock_file = tmp_path / ".lock"
    foreign = {"host": "other-node", "pid": 4242, "started": "2024-01-01T00:00:00", "token": "t", "proc_start": ""}
    lock_file.write_text(json.dumps(foreign))
    with pytest.raises(LockHeld, match="pid 4242 on host other-node"):
        FileLock(lock_file, "run folder X").acquire()
    old = time.time() - 3600
    os.utime(lock_file, (old, old))  # its node stopped refreshing it an hour ago
    with FileLock(lock_file, "run folder X") as lock:
        assert json.loads(lock_file.read_text())["token"] == lock.holder.token
    assert not lock_file.exists()


def test_lock_of_a_dead_local_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file = tmp_path / ".lock"
    lock_file.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": "x", "token": "t", "proc_start": ""}))
    with FileLock(lock_file, "results file R"):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            FileLock(lock_file, "results file R").acquire()


# 2. --force keeps the finished model until the new one is complete -----------------------------

def test_failed_forced_rerun_keeps_the_finished_model(tmp_path, capsys):
    assert run_finetune(config(tmp_path, max_steps=2)).status == "finished"
    _, weights = paths(tmp_path)
    log = weights.parent / "log.jsonl"
    before = (weights.read_bytes(), metadata_path(weights).read_bytes(), log.read_bytes())
    line = finetune_main(capsys, *flags(tmp_path, "--max-steps", "2", "--force", "--lr", "1e38"))  # diverges at step 1
    assert "overflowed" in line and "lower --lr" in line
    assert (weights.read_bytes(), metadata_path(weights).read_bytes(), log.read_bytes()) == before  # the model keeps its log
    assert run_finetune(config(tmp_path, max_steps=3, force=True)).status == "finished"
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3]  # the new model's log replaced it
    assert json.loads(metadata_path(weights).read_text())["steps"] == 3 and not (weights.parent / "log.pending.jsonl").exists()


# 3. verified caches -------------------------------------------------------------------------------

def test_flipped_head_and_truncated_theta0_are_rebuilt_with_one_line_each(tmp_path, capsys):
    assert run_finetune(config(tmp_path, max_steps=2)).status == "finished"
    layout, _ = paths(tmp_path)
    head, theta0 = layout.head(SPEC.model_id, "TrainToyA"), layout.zeroshot(SPEC.model_id)
    good_head = head.read_bytes()
    flip_byte(head)
    theta0.write_bytes(theta0.read_bytes()[:-100])
    capsys.readouterr()
    assert run_finetune(config(tmp_path, max_steps=2, force=True)).status == "finished"
    rebuilt = [line for line in capsys.readouterr().err.splitlines() if "rebuilding it" in line]
    assert len(rebuilt) == 2 and any(str(head) in line for line in rebuilt) and any(str(theta0) in line for line in rebuilt)
    assert head.read_bytes() == good_head  # same prompts, same text tower: the same head again
    load_weights(theta0)  # verified


def test_damaged_train_state_says_what_to_do(tmp_path, monkeypatch, capsys):
    layout, _ = paths(tmp_path)
    state = layout.train_state(SPEC.model_id, "TrainToyA", RUN)

    real_save = ImageEncoder.save

    def crash(self, path, extra=None, **kwargs):
        if Path(path).name == "finetuned.safetensors":
            raise RuntimeError("killed during the final save")
        return real_save(self, path, extra, **kwargs)

    with monkeypatch.context() as mp:  # leaves the state saved at step 2 behind, as a kill would
        mp.setattr(ImageEncoder, "save", crash)
        with pytest.raises(RuntimeError):
            run_finetune(config(tmp_path, max_steps=3, save_every=2))
    tensors = next(state.glob("tensors-*.safetensors"))
    flip_byte(tensors, 1000)
    line = finetune_main(capsys, *flags(tmp_path, "--max-steps", "3", "--save-every", "2"))
    for needle in (str(tensors), "is damaged", "--force", f"delete {state}"):
        assert needle in line


def test_damaged_finetuned_weights_name_the_file_and_the_command(finished):
    layout, weights = paths(finished)
    copy = finished / "copy"
    target = Layout(copy / "ck")
    path = target.finetuned(SPEC.model_id, "TrainToyA", RUN)
    path.parent.mkdir(parents=True)
    path.write_bytes(weights.read_bytes())
    metadata_path(path).write_bytes(metadata_path(weights).read_bytes())
    finetuned_checkpoint(SPEC, "TrainToyA", RunId.of(), target, finished / "data")  # intact: accepted
    flip_byte(path, 4)
    with pytest.raises(UserError) as err:
        finetuned_checkpoint(SPEC, "TrainToyA", RunId.of(), target, finished / "data")
    message = str(err.value)
    assert str(path) in message and "src/finetune.py --task TrainToyA" in message and "--force" in message


def test_flipped_tangent_cache_is_recomputed_not_trusted(tmp_path, capsys):
    calls = []

    class Computer:
        device = torch.device("cpu")

        def compute(self, checkpoints, loader):
            calls.append(sorted(checkpoints))
            return FeatureCache(torch.ones(4, 3), torch.arange(4), {t: torch.full((4, 3), 2.0) for t in checkpoints})

    ckpt = save_weights(tmp_path / "ck" / "A.safetensors", {"w": torch.zeros(1)}, {"steps": 1})
    store = lambda: TangentCacheStore(Computer(), {"A": ckpt}, tmp_path / "cache", {"model": "m"})  # noqa: E731
    wanted = [Direction(("A",))]
    first = store().get("Toy", "test", lambda: None, 4, directions=wanted)
    cache_file = tmp_path / "cache" / "Toy-test" / "A.safetensors"
    assert calls == [[], ["A"]] and cache_file.is_file()  # f0 from a plain pass, then the tangent
    store().get("Toy", "test", lambda: None, 4, directions=wanted)
    assert calls == [[], ["A"]]  # intact cache: reused
    flip_byte(cache_file, 8)
    again = store().get("Toy", "test", lambda: None, 4, directions=wanted)
    assert calls == [[], ["A"], ["A"]] and torch.equal(again.tangents["A"], first.tangents["A"])
    assert "rebuilding it" in capsys.readouterr().err


def test_truncated_file_written_by_the_suite_is_called_damaged(tmp_path):
    path = save_weights(tmp_path / "h.safetensors", {"w": torch.randn(4, 4)}, {"format": "zeroshot_head"})
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DamagedFile, match="is damaged") as err:
        load_weights(path)
    assert "not written by this suite" not in str(err.value)


# 4. full disk and read-only folders -------------------------------------------------------------

@pytest.mark.parametrize("code,phrase", [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only")])
def test_failed_weights_write_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch, code, phrase):
    path = save_weights(tmp_path / "out" / "w.safetensors", {"w": torch.zeros(256)}, {"v": 1})
    before = (path.read_bytes(), metadata_path(path).read_bytes())

    def fail(tensors, filename):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(ta_io, "save_file", fail)
    with pytest.raises(WriteFailed) as err:
        save_weights(path, {"w": torch.ones(256)}, {"v": 2})
    message = str(err.value)
    assert phrase in message and str(path.parent) in message and "1.0 KB" in message and "kept" in message
    assert (path.read_bytes(), metadata_path(path).read_bytes()) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.json", "w.safetensors"]  # no temporaries left


def test_full_disk_during_training_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    real_fsync = os.fsync

    def full(fd):
        if sum(1 for _ in tmp_path.rglob("finetuned.json")) == 0 and any(tmp_path.rglob(".finetuned.json.*.tmp")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(ta_io.os, "fsync", full)
    line = finetune_main(capsys, *flags(tmp_path, "--max-steps", "1"))
    assert line.startswith("error: cannot write finetuned.safetensors: no space left") and "free" in line


def test_results_write_on_read_only_folder_is_one_line(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ta_io.tempfile, "mkstemp", read_only)
    with pytest.raises(WriteFailed, match="read-only file system in .*res"):
        ta_io.atomic_write_json(tmp_path / "res" / "addition.json", {"x": 1})


# 5.-7. bad input ---------------------------------------------------------------------------------

def test_repeated_task_names_are_refused():
    with pytest.raises(UserError, match="TrainToyA more than once"):
        parse_task_list("TrainToyA,TrainToyB,TrainToyA")
    assert parse_task_list("TrainToyA,TrainToyB") == ["TrainToyA", "TrainToyB"]


def test_metadata_that_is_not_an_object_is_a_user_error(tmp_path):
    path = save_weights(tmp_path / "w.safetensors", {"w": torch.zeros(2)}, {"v": 1})
    metadata_path(path).write_text("[1, 2, 3]")
    with pytest.raises(UserError, match="holds a JSON list, expected an object"):
        load_weights(path)


def test_weights_metadata_cannot_redefine_an_architecture(finished):
    _, weights = paths(finished)
    registered = open_clip.get_model_config("TinyCLIP")
    meta = json.loads(metadata_path(weights).read_text())
    hostile = json.loads(json.dumps(registered))
    hostile["vision_cfg"]["width"] = 8
    meta["model_config"] = hostile
    copy = finished / "hostile" / "finetuned.safetensors"
    copy.parent.mkdir()
    copy.write_bytes(weights.read_bytes())
    metadata_path(copy).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="describes architecture 'TinyCLIP' differently"):
        load_encoder(copy)
    assert open_clip.get_model_config("TinyCLIP") == registered  # nothing was registered process-wide


def test_bad_finetune_inputs_are_one_line_errors(tmp_path, capsys):
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    line = finetune_main(capsys, *flags(tmp_path, "--max-steps", "1"), "--checkpoint-root", str(a_file))
    assert "--checkpoint-root" in line and "is a file" in line
    line = finetune_main(capsys, *flags(tmp_path, "--max-steps", "1", "--init-from", str(tmp_path)))
    assert "--init-from" in line and "is a folder" in line
    line = finetune_main(capsys, *flags(tmp_path, "--max-steps", "1"), "--pretrained", str(tmp_path) + "/")
    assert "is a folder" in line


@pytest.mark.parametrize("argv", [["--control-ratio", "nan"], ["--control-ratio", "inf"]])
def test_non_finite_negation_ratio_is_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.build_parser("negation").parse_args(argv)
    assert exit_info.value.code == 2 and "finite" in capsys.readouterr().err


def test_non_finite_grid_limit_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.build_parser("disentanglement").parse_args(["--grid-limit", "inf"])
    assert exit_info.value.code == 2 and "finite" in capsys.readouterr().err


def test_evaluation_refuses_a_checkpoint_root_that_is_a_file(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    args = eval_cli.build_parser("addition").parse_args(["--checkpoint-root", str(a_file), "--tasks", "TrainToyA,TrainToyB"])
    with pytest.raises(UserError, match="--checkpoint-root .* is a file"):
        eval_cli.run_command("addition", args)


# 8.-11. signals, permissions, messages -----------------------------------------------------------

def test_sigterm_during_set_up_exits_75(tmp_path):
    layout, weights = paths(tmp_path)
    process = subprocess.Popen(finetune_command(*flags(tmp_path, "--max-steps", "3")), cwd=REPO, env=subprocess_env(),
                               stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (weights.parent / ".lock").is_file(), process)  # the run has started its set-up
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == EXIT_PREEMPTED, process.stderr.read()
    assert not metadata_path(weights).is_file()


def test_outputs_keep_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = save_weights(tmp_path / "w.safetensors", {"w": torch.zeros(2)}, {})
    finally:
        os.umask(previous)
    assert (path.stat().st_mode & 0o777, metadata_path(path).stat().st_mode & 0o777) == (0o644, 0o644)


def test_only_the_main_process_prints_saved(monkeypatch, capsys):
    sys.path.insert(0, str(REPO / "src"))
    import finetune
    from task_arithmetic import training
    from task_arithmetic.training.loop import FinetuneResult

    monkeypatch.setattr(training, "run_finetune", lambda cfg: FinetuneResult("finished", Path("w.safetensors"), 1, cfg, is_main=False))
    assert finetune.main(["--task", "TrainToyA", "--model", "TinyCLIP", "--pretrained", "none"]) == 0
    assert "saved" not in capsys.readouterr().out


def test_offline_tag_prints_only_the_suites_line(monkeypatch, capsys):
    import logging

    from task_arithmetic.models import factory

    def offline(*args, **kwargs):
        logging.error("Failed to download weights for tag 'openai': offline")
        raise RuntimeError("Failed to download weights for tag 'openai'")

    monkeypatch.setattr(factory.open_clip, "create_model_and_transforms", offline)
    logging.basicConfig()
    with pytest.raises(UserError, match="cannot be downloaded here"):
        factory.create_clip(ModelSpec("ViT-B-32", "openai"))
    assert "Failed to download" not in capsys.readouterr().err
