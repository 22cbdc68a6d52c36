"""Fault injection, third round (issue 23): full and read-only disks on real small file systems,
a study killed outright, names that would leave their root, NaN in float flags, tracebacks on
bad input, results silently replaced or stale, and the smaller leftovers.

The mechanisms under test: io.py and storage/write_errors.py (every write), paths.check_name
(every path component), flags.py (every float flag), evaluation/results.py (results keyed by
their settings), pipeline/lifeline.py (workers die with the study).
"""

import argparse
import contextlib
import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fakedata import make_dtd_raw, make_mnist
from test_training_support import REPO, finetune_command, register_tasks, subprocess_env
from toyworld import isolated_toy_world

from task_arithmetic.data.real import tool
from task_arithmetic.errors import UserError
from task_arithmetic.io import atomic_write_json, metadata_path, save_weights
from task_arithmetic.merging.config import compose
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.paths import Layout
from task_arithmetic.storage.locks import FileLock
from task_arithmetic.storage.write_errors import WriteFailed
from task_arithmetic.training import FinetuneConfig, run_finetune
from task_arithmetic.training.preemption import EXIT_PREEMPTED

register_tasks()
SPEC = ModelSpec("TinyCLIP")
TEMPORARY = (".tmp", ".new", ".partial", ".takeover")


def config(root: Path, **kw) -> FinetuneConfig:
    return FinetuneConfig(task="TrainToyA", model="TinyCLIP", pretrained=None, device="cpu", progress=False, batch_size=8,
                          checkpoint_root=str(root / "ck"), results_root=str(root / "res"), data_location=str(root / "data"), **kw)


def flags(root: Path, *extra: str) -> list[str]:
    return ["--task", "TrainToyA", "--batch-size", "8", "--checkpoint-root", str(root / "ck"), "--results-root", str(root / "res"),
            "--data-location", str(root / "data"), *extra]


def weights_of(root: Path, task: str = "TrainToyA", run: str = "standard") -> Path:
    return Layout(root / "ck").finetuned(SPEC.model_id, task, run)


def leftovers(root: Path) -> list[str]:
    return [str(p) for p in Path(root).rglob("*") if p.name.endswith(TEMPORARY) or ".lock." in p.name]


def one_line(capsys, call, code: int = 2) -> str:
    """Run a script's main(): it must exit `code` with one `error: ...` line and no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        call()
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert exit_info.value.code == code and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def argparse_error(capsys, call) -> str:
    """An argparse type refusal: exit 2, its `error:` line last, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        call()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err and "error: argument" in err.strip().splitlines()[-1], err
    return err.strip().splitlines()[-1]


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A small real file system (Linux, root); the test is skipped where none can be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs Linux and root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def fill(folder: Path) -> None:
    """Use up every byte left on the file system of `folder`."""
    with open(folder / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    assert run_finetune(config(root, max_steps=2)).status == "finished"
    return root


# 1. full disks and read-only folders ------------------------------------------------------------

def test_full_disk_for_weights_json_and_locks_is_one_line_and_leaves_nothing(tmp_path):
    with tmpfs(tmp_path / "fs", "512k") as fs:
        path = save_weights(fs / "out" / "w.safetensors", {"w": torch.zeros(1024)}, {"v": 1})
        before = (path.read_bytes(), metadata_path(path).read_bytes())
        with pytest.raises(WriteFailed) as err:  # safetensors' own error ("... (os error 28)"), from the real file system
            save_weights(path, {"w": torch.zeros(200_000)}, {"v": 2})
        message = str(err.value)
        for needle in ("cannot write w.safetensors: no space left", str(path.parent), "needs about 781.2 KB", "kept"):
            assert needle in message, message
        assert (path.read_bytes(), metadata_path(path).read_bytes()) == before
        fill(fs)
        with pytest.raises(WriteFailed, match="no space left"):
            atomic_write_json(fs / "out" / "results.json", {"x": list(range(1000))})
        with pytest.raises(WriteFailed, match="no space left"):
            FileLock(fs / "out" / ".lock", "run folder out").acquire()
        assert sorted(p.name for p in (fs / "out").iterdir()) == ["w.json", "w.safetensors"]  # no 0-byte lock or JSON temporaries


def test_full_disk_during_a_forced_rerun_and_a_state_save_keeps_the_finished_model(tmp_path):
    with tmpfs(tmp_path / "fs", "3m") as root:  # theta_0 and one model (1.4 MB each) fit, a second model or a train state do not
        assert run_finetune(config(root, max_steps=2)).status == "finished"
        weights = weights_of(root)
        before = (weights.read_bytes(), metadata_path(weights).read_bytes())
        done = subprocess.run(finetune_command(*flags(root, "--force", "--max-steps", "2")), cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=180)
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert last.startswith("error: cannot write finetuned.safetensors: no space left on the device in ") and "needs about" in last and "free" in last, last
        assert (weights.read_bytes(), metadata_path(weights).read_bytes()) == before and leftovers(root) == []
        with pytest.raises(WriteFailed, match="cannot write tensors-000000001.safetensors: no space left"):  # the resumable state (3x the model)
            run_finetune(config(root, max_steps=3, save_every=1, force=True))
        assert (weights.read_bytes(), metadata_path(weights).read_bytes()) == before and leftovers(root) == []


def test_export_refuses_unwritable_outputs_in_one_line_before_any_work(finished, tmp_path, capsys):
    from export_checkpoints import main as export_main

    encoder = str(weights_of(finished))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert "is a file, not a folder" in one_line(capsys, lambda: export_main([encoder, str(a_file)]))
    assert f"{a_file} is a file, so nothing can be written under it" in one_line(capsys, lambda: export_main([encoder, str(a_file / "out")]))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert "holds other files (notes.txt)" in one_line(capsys, lambda: export_main([encoder, str(mine), "--force"]))
    assert (mine / "notes.txt").read_text() == "keep me" and a_file.read_text() == "x"
    with tmpfs(tmp_path / "fs", "1m") as fs:
        (fs / "old").mkdir()
        read_only(fs)
        line = one_line(capsys, lambda: export_main([encoder, str(fs / "out")]))
        assert "read-only file system in " + str(fs) in line, line
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
        line = one_line(capsys, lambda: export_main([encoder, str(fs / "out")]))  # the model (1.4 MB) does not fit in 1 MB
        assert line.startswith("error: cannot write out: no space left on the device in ") and "needs about" in line, line
        assert sorted(p.name for p in fs.iterdir()) == ["old"]  # no half-written folder


def test_a_split_on_a_read_only_data_folder_is_one_line(tmp_path, capsys):
    from prepare_datasets import main as prepare_main

    with tmpfs(tmp_path / "fs", "8m") as data:
        make_dtd_raw(data)
        read_only(data)
        line = one_line(capsys, lambda: prepare_main(["split", "--data-location", str(data), "--tasks", "DTD"]))
        assert "read-only file system in " + str(data / "dtd") in line, line


def test_a_slurm_log_dir_that_cannot_be_written_is_one_line_before_any_submission(tmp_path):
    from task_arithmetic.pipeline.slurm import SlurmOptions, submit

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    never = lambda *args, **kwargs: pytest.fail("nothing may be submitted")  # noqa: E731
    with pytest.raises(WriteFailed, match="is a file, not a folder"):
        submit(None, [], SlurmOptions(0, 1, None, None, None, a_file), sys.executable, run=never)
    with tmpfs(tmp_path / "fs", "64k") as fs:
        read_only(fs)
        with pytest.raises(WriteFailed, match="read-only file system in " + str(fs)):
            submit(None, [], SlurmOptions(0, 1, None, None, None, fs / "logs"), sys.executable, run=never)


# 2. a killed study takes its workers with it ----------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie waits for init, it holds nothing
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_sigkill_of_the_study_ends_its_workers_which_save_and_release_their_locks(tmp_path):
    ck = tmp_path / "ck"
    cmd = [sys.executable, "src/run_study.py", "--model", "TinyCLIP", "--pretrained", "none", "--tasks", "TrainToyA,TrainToyB", "--recipes", "standard",
           "--evaluations", "single_task", "--jobs", "2", "--max-steps", "100000", "--save-every", "100000", "--batch-size", "8", "--device", "cpu",
           "--no-progress", "--checkpoint-root", str(ck), "--results-root", str(tmp_path / "res"), "--data-location", str(tmp_path / "data")]
    study = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        def training() -> int:  # runs past their first step (a run killed during its set-up has no state to save)
            return sum(1 for log in ck.rglob("log.jsonl") if log.stat().st_size > 0)

        while (len(list(ck.rglob(".lock"))) < 2 or training() < 2) and study.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # both workers are fine-tuning, each holding its run folder's lock
        assert len(list(ck.rglob(".lock"))) == 2 and training() == 2, study.stderr.read() if study.poll() is not None else "timed out"
        workers = _children(study.pid)
        assert len(workers) >= 2
    finally:
        study.kill()  # SIGKILL: no handler runs in the study itself
        study.wait(timeout=30)
    deadline = time.monotonic() + 120
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)]  # the workers and the resource tracker are gone
    assert list(ck.rglob(".lock")) == []  # released, not left for a take-over
    states = list(ck.rglob("train_state/state.json"))
    assert len(states) == 2  # each run saved its state on the way out: the same command resumes it
    assert "stop signal received; state saved at step" in study.stderr.read()


# 3. names never leave their root ------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_clip_folders(tmp_path_factory) -> Path:
    from openai_clip import finetuned_vision
    from test_public_checkpoints import tiny_clip

    root = tmp_path_factory.mktemp("hf")
    clip = tiny_clip("gelu")
    clip.save_pretrained(root / "clip")
    finetuned_vision(clip, seed=1).save_pretrained(root / "tuned")
    finetuned_vision(tiny_clip("gelu", seed=5), seed=2).save_pretrained(root / "unrelated")
    return root


@pytest.mark.parametrize("flag, value", [("--tag", "../../../../x"), ("--name", "../../x"), ("--tag", ".hidden"), ("--finetuned-hf", "../x=")])
def test_import_refuses_names_that_would_leave_the_checkpoint_root(hf_clip_folders, tmp_path, capsys, flag, value):
    from import_checkpoints import main as import_main

    root = hf_clip_folders
    argv = ["--pretrained-hf", str(root / "clip"), "--checkpoint-root", str(tmp_path / "ck"), "--finetuned-hf", f"Cars={root / 'tuned'}"]
    value = value + str(root / "tuned") if value.endswith("=") else value
    line = argparse_error(capsys, lambda: import_main([*argv, flag, value]))
    assert "cannot be used as a folder or file name" in line, line
    assert not (tmp_path / "ck").exists() and not (tmp_path / "x").exists() and not (tmp_path / "x.safetensors").exists()


def test_every_path_component_goes_through_one_validator(tmp_path):
    layout = Layout(tmp_path / "ck", tmp_path / "res")
    for call in (lambda: layout.finetuned("m", "../x", "standard"), lambda: layout.run_dir("m", "Cars", "standard/../../x"),
                 lambda: layout.results("..", "standard", "addition"), lambda: layout.head("m", ".lock"), lambda: layout.results("m", "r", "a/b")):
        with pytest.raises(UserError, match="cannot be used as a folder or file name"):
            call()
    assert layout.finetuned("ViT-B-32-openai", "Cars", "standard-public").parts[-4:] == ("ViT-B-32-openai", "Cars", "standard-public", "finetuned.safetensors")


# 4. every float flag is finite -----------------------------------------------------------------------

def test_nan_cannot_switch_off_the_import_distance_check(hf_clip_folders, tmp_path, capsys):
    from import_checkpoints import main as import_main

    root = hf_clip_folders
    for value in ("nan", "inf", "-1"):
        line = argparse_error(capsys, lambda: import_main(["--pretrained-hf", str(root / "clip"), "--finetuned-hf", f"Cars={root / 'unrelated'}",
                                                           "--max-distance", value, "--checkpoint-root", str(tmp_path / "ck")]))
        assert "--max-distance" in line and "number > 0" in line, line
    assert not (tmp_path / "ck").exists()


def _every_flag() -> dict[str, list[argparse.Action]]:
    """Every flag of every entry script and every evaluation, recorded as each script declares it."""
    import download_weights
    import export_checkpoints
    import finetune
    import import_checkpoints
    import prepare_datasets
    import pretrain_embedded
    import report
    import run_study
    from task_arithmetic.evaluation.cli import build_parser
    from task_arithmetic.evaluation.registry import EVALUATIONS

    seen: dict[str, list[argparse.Action]] = {}
    real = argparse._ActionsContainer.add_argument
    current = ["?"]

    def record(self, *args, **kwargs):
        action = real(self, *args, **kwargs)
        seen.setdefault(current[0], []).append(action)
        return action

    calls = {
        "download_weights": lambda: download_weights.main.__wrapped__(["--help"]),
        "export_checkpoints": lambda: export_checkpoints.main.__wrapped__(["--help"]),
        "import_checkpoints": lambda: import_checkpoints.main.__wrapped__(["--help"]),
        "report": lambda: report.main.__wrapped__(["--help"]),
        "finetune": lambda: finetune.parse_args(["--help"]),
        "run_study": lambda: run_study.parser(),
        "pretrain_embedded": lambda: pretrain_embedded.parse_args(["--help"]),
        "prepare_datasets": lambda: prepare_datasets.parse_args(["check", "--help"]),
        **{f"evaluate {e}": (lambda e=e: build_parser(e)) for e in EVALUATIONS},
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse._ActionsContainer, "add_argument", record)
        for name, call in calls.items():
            current[0] = name
            with contextlib.suppress(SystemExit):
                call()
    return seen


def _parses_floats(action: argparse.Action) -> bool:
    try:
        return callable(action.type) and isinstance(action.type("0.5"), float)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False


def test_no_script_takes_a_float_flag_without_the_finiteness_check(capsys):
    flags_by_script = _every_flag()
    capsys.readouterr()  # the --help texts
    assert {"finetune", "run_study", "import_checkpoints", "evaluate negation", "evaluate disentanglement"} <= set(flags_by_script)
    floats = {f"{script} {a.option_strings[0]}": a for script, actions in flags_by_script.items() for a in actions if _parses_floats(a)}
    assert {"finetune --lr", "finetune --penalty-coef", "run_study --alpha-step", "run_study --lr", "import_checkpoints --max-distance",
            "evaluate negation --control-ratio", "evaluate disentanglement --grid-limit"} <= set(floats)
    for name, action in floats.items():
        assert action.type.__module__ == "task_arithmetic.flags", name  # one module parses every float flag
        for bad in ("nan", "inf", "-inf"):
            with pytest.raises(argparse.ArgumentTypeError):
                action.type(bad)


# 5. bad input: one line, not a traceback -------------------------------------------------------------

@pytest.mark.parametrize("tasks", ["", ",,"])
def test_an_empty_task_list_is_one_line(tasks, tmp_path, capsys):
    from run_study import main as study_main

    line = one_line(capsys, lambda: study_main(["--tasks", tasks, "--dry-run", "--checkpoint-root", str(tmp_path)]))
    assert "--tasks" in line and "names no task" in line


def test_seeds_too_large_for_the_generators_are_refused_before_any_work(tmp_path, capsys):
    from finetune import main as finetune_main
    from run_study import main as study_main

    huge = "99999999999999999999999"
    line = argparse_error(capsys, lambda: finetune_main(["--model", "TinyCLIP", "--pretrained", "none", *flags(tmp_path, "--seed", huge)]))
    assert "--seed" in line and "<= 4294967295" in line
    line = one_line(capsys, lambda: study_main(["--preset", "smoke", "--seeds", f"0,{huge}", "--dry-run", "--checkpoint-root", str(tmp_path)]))
    assert "--seeds" in line and "4294967295" in line
    with pytest.raises(UserError, match="--seed: expected an integer >= 0 and <= 4294967295"):
        run_finetune(config(tmp_path, max_steps=1, seed=2**64))
    assert not (tmp_path / "ck").exists()


def test_merge_refuses_bad_outputs_and_switches_before_any_work(finished, tmp_path, capsys):
    from merge import main as merge_main

    weights = weights_of(finished)
    before = (weights.read_bytes(), metadata_path(weights).read_bytes())
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    results = tmp_path / "addition.json"
    atomic_write_json(results, {"evaluation": "addition", "results": {}})
    cases = {
        f"merged_model_save_path={weights}": "holds the fine-tuned run standard of TrainToyA, which a merge must not replace",
        f"merged_model_save_path={tmp_path}": "is a folder holding files no merge wrote",
        f"merged_model_save_path={a_file}/m.safetensors": "is a file, so nothing can be written under it",
        f"report_save_path={tmp_path}": "is a folder, not a file",
        f"report_save_path={results}": "is not a merge report",
        "dry_run=maybe": "dry_run must be true or false, got 'maybe'",
        "seed=99999999999": "seed: expected an integer >= 0 and <= 4294967295",
    }
    for override, needle in cases.items():
        line = one_line(capsys, lambda: merge_main(["method=task_arithmetic", "print_config=false", f"checkpoint_root={finished / 'ck'}", override]))
        assert needle in line, line
    assert (weights.read_bytes(), metadata_path(weights).read_bytes()) == before
    assert json.loads(results.read_text())["evaluation"] == "addition" and a_file.read_text() == "x"


def test_a_merge_config_with_a_python_tag_is_one_line_and_runs_nothing(tmp_path):
    root = tmp_path / "config"
    shutil.copytree(REPO / "config", root)
    marker = tmp_path / "code-ran"
    (root / "method" / "evil.yaml").write_text(f"_target_: TaskArithmeticAlgorithm\nscaling_factor: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UserError) as err:
        compose(["method=evil", "taskpool=null"], root=root)
    message = str(err.value)
    assert "\n" not in message and "not plain YAML" in message and "evil.yaml, line 2" in message and "python/object/apply:os.system" in message
    assert not marker.exists()


def test_check_counts_on_a_damaged_mnist_reports_it(tmp_path, capsys):
    from prepare_datasets import main as prepare_main

    make_mnist(tmp_path)
    images = tmp_path / "MNIST/raw/train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100])  # an interrupted download
    assert prepare_main(["check", "--data-location", str(tmp_path), "--tasks", "MNIST", "--counts"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "MNIST" in captured.out and "incomplete: MNIST: the train files under" in captured.out and "download or extract it again" in captured.out


@pytest.mark.parametrize("entry", ["../images/banded/banded_0000.jpg", "/etc/hostname", "banded/../../labels/train1.txt"])
def test_a_dtd_label_list_pointing_outside_its_images_is_refused(tmp_path, entry):
    make_dtd_raw(tmp_path)
    labels = tmp_path / "dtd/labels/train1.txt"
    labels.write_text(labels.read_text() + entry + "\n")
    with pytest.raises(UserError) as err:
        tool.split(tmp_path, ["DTD"])
    assert f"the file {entry!r} named in {tmp_path / 'dtd/labels'} is not a path inside {tmp_path / 'dtd/images'}" in str(err.value)
    assert not (tmp_path / "dtd/train").exists() and leftovers(tmp_path) == []


# 6. results keyed by their settings ---------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with isolated_toy_world(tmp_path_factory.mktemp("toy"), n_val=8, n_test=8) as toy:
        yield toy


def _evaluate(world, evaluation, *extra):
    from evaluate import run

    return run([evaluation, "--model", "TinyCLIP", "--pretrained", "none", "--checkpoint-root", str(world.layout.checkpoint_root),
                "--results-root", str(world.layout.results_root), "--data-location", str(world.data_location), "--device", "cpu",
                "--num-workers", "0", *extra])


def test_evaluate_refuses_to_replace_results_of_other_settings_without_force(world, capsys):
    assert _evaluate(world, "negation", "--tasks", "Toy0,Toy1", "--alpha-step", "0.5") == 0
    path = world.layout.results(world.spec.model_id, "standard", "negation")
    first = path.read_text()
    assert _evaluate(world, "negation", "--tasks", "Toy0,Toy1", "--alpha-step", "0.5", "--control", "ToyControl") == 0  # the same settings, spelled out
    with pytest.raises(SystemExit) as exit_info:
        _evaluate(world, "negation", "--tasks", "Toy0,Toy1", "--alpha-step", "0.25")
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and "Traceback" not in err and line.startswith("error: ")
    assert str(path) in line and "other settings (alpha_step 0.5 -> 0.25)" in line and "--force" in line
    assert json.loads(path.read_text())["key"] == json.loads(first)["key"]
    assert _evaluate(world, "negation", "--tasks", "Toy0,Toy1", "--alpha-step", "0.25", "--force") == 0
    assert json.loads(path.read_text())["key"]["settings"]["alpha_step"] == 0.25


@pytest.mark.parametrize("extra, needle", [
    (["negation", "--tasks", "Toy0,Toy1", "--control", "Toy1"], "the control task Toy1 is one of the negated tasks"),
    (["disentanglement", "--tasks", "Toy0,Toy1", "--grid-points", "1"], "argument --grid-points: expected an integer >= 2"),
    (["disentanglement", "--tasks", "Toy0,Toy1", "--grid-limit", "0"], "argument --grid-limit: expected a number > 0"),
    (["addition", "--tasks", "Toy0,Toy1", "--batch-size", "0"], "argument --batch-size: expected an integer >= 1"),
])
def test_evaluation_values_that_make_no_sense_are_refused(world, capsys, extra, needle):
    with pytest.raises(SystemExit) as exit_info:
        _evaluate(world, *extra)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err.strip().splitlines()[-1] and "Traceback" not in err, err


def test_the_study_recomputes_results_made_with_other_settings_and_says_so(world, capsys):
    from run_study import main as study_main

    argv = ["--model", "TinyCLIP", "--pretrained", "none", "--tasks", "Toy0,Toy1", "--recipes", "standard", "--evaluations", "single_task,addition",
            "--checkpoint-root", str(world.layout.checkpoint_root), "--results-root", str(world.layout.results_root / "study"),
            "--data-location", str(world.data_location), "--device", "cpu", "--no-progress", "--jobs", "1", "--max-steps", "1", "--max-eval-samples", "4"]
    study_main([*argv, "--alpha-step", "0.5"])
    results = world.layout.results_root / "study" / world.spec.model_id / "standard"
    single = (results / "single_task.json").read_text()
    capsys.readouterr()
    study_main([*argv, "--alpha-step", "0.25"])
    out = capsys.readouterr().out
    assert "standard/addition: stale results (alpha_step 0.5 -> 0.25); recomputing" in out and "single_task: stale" not in out
    assert json.loads((results / "addition.json").read_text())["key"]["settings"]["alpha_step"] == 0.25
    assert (results / "single_task.json").read_text() == single  # its settings did not change: kept
    study_main([*argv, "--alpha-step", "0.25"])
    assert "[evaluate/standard] up to date" in capsys.readouterr().out
    assert "--eval-batch-size: expected an integer >= 1" in argparse_error(capsys, lambda: study_main([*argv, "--eval-batch-size", "0"]))


# 7. the smaller leftovers -----------------------------------------------------------------------------

@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
def test_sigterm_while_the_script_imports_exits_75(tmp_path):
    process = subprocess.Popen(finetune_command(*flags(tmp_path, "--max-steps", "2")), cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    status = Path(f"/proc/{process.pid}/status")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:  # until its handler is in place (SigCgt has SIGTERM's bit)
        caught = next((line.split()[1] for line in status.read_text().splitlines() if line.startswith("SigCgt:")), "0")
        if int(caught, 16) & (1 << (signal.SIGTERM - 1)):
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == EXIT_PREEMPTED, process.stderr.read()
    assert "stopped by SIGTERM" in process.stderr.read() and not (tmp_path / "ck").exists()


def _state_of_a_run_killed_before_its_final_save(root: Path, task: str, monkeypatch) -> Path:
    from task_arithmetic.models.encoder import ImageEncoder

    real_save = ImageEncoder.save

    def crash(self, path, extra=None, **kwargs):
        if Path(path).name == "finetuned.safetensors":
            raise RuntimeError("killed during the final save")
        return real_save(self, path, extra, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(ImageEncoder, "save", crash)
        with pytest.raises(RuntimeError):
            run_finetune(dataclasses.replace(config(root, max_steps=3, save_every=2), task=task))
    return Layout(root / "ck").train_state(SPEC.model_id, task, "standard")


def test_a_state_json_pointing_at_other_tensors_is_refused(tmp_path, monkeypatch):
    state_a = _state_of_a_run_killed_before_its_final_save(tmp_path, "TrainToyA", monkeypatch)
    state_b = _state_of_a_run_killed_before_its_final_save(tmp_path, "TrainToyB", monkeypatch)
    state_file = state_a / "state.json"
    original = json.loads(state_file.read_text())
    other = f"../../../TrainToyB/standard/train_state/{original['tensors']}"
    state_file.write_text(json.dumps({**original, "tensors": other}))
    with pytest.raises(UserError, match="not a tensors-<step>.safetensors file of its own folder"):
        run_finetune(config(tmp_path, max_steps=3, save_every=2))
    theirs = state_a / "tensors-000000002.safetensors"
    theirs.unlink()
    shutil.copy(state_b / "tensors-000000002.safetensors", theirs)  # another run's tensors under this run's name
    shutil.copy(state_b / "tensors-000000002.json", state_a / "tensors-000000002.json")
    state_file.write_text(json.dumps(original))
    with pytest.raises(UserError, match="does not match its tensors .* saved by another run"):
        run_finetune(config(tmp_path, max_steps=3, save_every=2))


def test_a_finished_run_killed_at_its_last_moment_or_a_failed_force_leaves_nothing_behind(tmp_path, capsys):
    assert run_finetune(config(tmp_path, max_steps=2)).status == "finished"
    weights = weights_of(tmp_path)
    run_dir = weights.parent
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / ".lock").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "started": "x", "token": "t", "proc_start": ""}))
    (run_dir / "train_state").mkdir()
    (run_dir / "train_state" / "state.json").write_text("{}")
    (run_dir / "log.pending.jsonl").write_text('{"step": 1}\n')
    (run_dir / ".finetuned.safetensors.x1.tmp").write_bytes(b"half")
    before = weights.read_bytes()
    assert run_finetune(config(tmp_path, max_steps=2)).status == "skipped"
    assert sorted(p.name for p in run_dir.iterdir()) == ["finetuned.json", "finetuned.safetensors", "log.jsonl"]
    assert weights.read_bytes() == before and "removed what an interrupted save or --force run left" in capsys.readouterr().err
