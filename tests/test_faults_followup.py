"""Fault injection, continued: weights files that are pickles of code or random bytes, the
pretraining bar under --no-progress, config names that leave config/, signals during the final
save, a failed --force keeping the old log, and verified reads hashing a file once."""

import os
import signal
import sys
from pathlib import Path

import pytest
import torch
from test_training_support import REPO, register_tasks

from task_arithmetic.errors import UserError
from task_arithmetic.io import load_weights, save_weights
from task_arithmetic.merging.modelpool.hf_clip import CLIPVisionModelPool
from task_arithmetic.merging.modelpool.open_clip_files import OpenCLIPVisionModelPool
from task_arithmetic.models.encoder import ImageEncoder
from task_arithmetic.models.factory import ModelSpec, create_clip
from task_arithmetic.paths import Layout
from task_arithmetic.storage import checksums
from task_arithmetic.storage.checksums import DamagedFile
from task_arithmetic.storage.pickles import load_tensor_pickle

register_tasks()


class _OpensAFile:
    """Pickles as a call of open(marker, 'w'): loading it would create the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def one_line_error(call) -> str:
    with pytest.raises(UserError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message, message
    return message


# 6d/6g: pickles of code and random bytes -----------------------------------------------------------

@pytest.fixture(scope="module")
def hf_vision_folder(tmp_path_factory) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = tmp_path_factory.mktemp("hf") / "vision"
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    CLIPVisionModel(config).save_pretrained(folder)
    return folder


def _hf_folder_with_bin(source: Path, target: Path, content: bytes) -> Path:
    target.mkdir()
    (target / "config.json").write_bytes((source / "config.json").read_bytes())
    (target / "pytorch_model.bin").write_bytes(content)
    return target


def test_hf_folder_whose_bin_is_a_pickle_of_code_is_refused_unread(hf_vision_folder, tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"w": _OpensAFile(marker)}, tmp_path / "evil.bin")
    folder = _hf_folder_with_bin(hf_vision_folder, tmp_path / "evil", (tmp_path / "evil.bin").read_bytes())
    pool = CLIPVisionModelPool(models={"_pretrained_": str(folder)})
    message = one_line_error(lambda: pool.load_model("_pretrained_"))
    assert str(folder / "pytorch_model.bin") in message and "refers to Python code (" in message and "open)" in message
    assert not marker.exists()


def test_hf_folder_whose_bin_is_random_bytes_is_called_damaged(hf_vision_folder, tmp_path):
    folder = _hf_folder_with_bin(hf_vision_folder, tmp_path / "noise", os.urandom(4096))
    pool = CLIPVisionModelPool(models={"_pretrained_": str(folder)})
    message = one_line_error(lambda: pool.load_model("_pretrained_"))
    assert str(folder / "pytorch_model.bin") in message and "is damaged or not a readable weights file" in message


def test_random_bytes_in_a_bin_are_not_called_pickled_modules(tmp_path):
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(4096))
    pool = OpenCLIPVisionModelPool(model="TinyCLIP", models={"_pretrained_": str(noise)})
    message = one_line_error(lambda: pool.load_state("_pretrained_"))
    assert "is damaged or not a readable weights file" in message and "pickled whole modules" not in message
    module = tmp_path / "module.bin"
    torch.save(torch.nn.Linear(2, 2), module)
    assert "pickled whole modules" in one_line_error(lambda: load_tensor_pickle(module, mmap=True))


def test_old_format_state_dict_is_read_without_mmap(tmp_path):
    # torch's pre-zip format cannot be memory-mapped; it is still a plain state_dict.
    clip, _, _ = create_clip(ModelSpec("TinyCLIP"))
    old = tmp_path / "old.bin"
    torch.save(clip.state_dict(), old, _use_new_zipfile_serialization=False)
    pool = OpenCLIPVisionModelPool(model="TinyCLIP", models={"_pretrained_": str(old)})
    state = pool.load_state("_pretrained_")
    assert torch.equal(state["visual.conv1.weight"], clip.state_dict()["visual.conv1.weight"])


# 11b: --no-progress reaches the embedded pretraining ---------------------------------------------

class _Pretrained(Exception):
    pass


@pytest.mark.parametrize("argv,shown", [(["--no-progress"], False), ([], True)])
def test_no_progress_reaches_the_embedded_pretraining(tmp_path, monkeypatch, argv, shown):
    from task_arithmetic.embedded import pretrain

    seen = []

    def record(cfg, device="cpu", progress=True):
        seen.append(progress)
        raise _Pretrained  # what it was asked is all this test needs

    monkeypatch.setattr(pretrain, "pretrain_clip", record)
    sys.path.insert(0, str(REPO / "src"))
    import finetune

    with pytest.raises(_Pretrained):
        finetune.main(["--task", "TrainToyA", "--model", "TinyCLIP", "--pretrained", "embedded-smoke", "--cache-dir", str(tmp_path / "pre"),
                       "--device", "cpu", "--max-steps", "1", "--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res"),
                       "--data-location", str(tmp_path / "data"), *argv])
    assert seen == [shown]


# 11d: config names never leave config/ --------------------------------------------------------------

def test_merge_refuses_a_config_name_outside_config(tmp_path, capsys):
    outside = tmp_path / "x.yaml"
    outside.write_text("_target_: fusion_bench.method.TaskArithmeticAlgorithm\nscaling_factor: 0.3\n")
    relative = os.path.relpath(tmp_path / "x", REPO / "config" / "method")
    from merge import main  # src/merge.py

    for name in ("../../x", relative):
        with pytest.raises(SystemExit) as exit_info:
            main([f"method={name}", "print_config=false"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(lines) == 1 and "paths under config/method/" in lines[0], lines


# SIGTERM/SIGUSR1 during the final save --------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_signal_during_the_final_save_completes_the_run(tmp_path, monkeypatch, capsys, signum):
    reached_the_test = []
    previous = signal.signal(signum, lambda *args: reached_the_test.append(args[0]))  # what an unhandled signal would hit
    real_save = ImageEncoder.save

    def signalled_save(self, path, *args, **kwargs):
        if Path(path).name == "finetuned.safetensors":
            os.kill(os.getpid(), signum)  # Slurm's signal arrives while the final weights are written
        return real_save(self, path, *args, **kwargs)

    monkeypatch.setattr(ImageEncoder, "save", signalled_save)
    sys.path.insert(0, str(REPO / "src"))
    import finetune

    try:
        code = finetune.main(["--task", "TrainToyA", "--model", "TinyCLIP", "--pretrained", "none", "--device", "cpu", "--no-progress",
                              "--batch-size", "8", "--max-steps", "2", "--checkpoint-root", str(tmp_path / "ck"),
                              "--results-root", str(tmp_path / "res"), "--data-location", str(tmp_path / "data")])
    finally:
        signal.signal(signum, previous)
    assert reached_the_test == []  # the run's own handler took it, not the default (exit 143 / 138)
    assert code == 0
    captured = capsys.readouterr()
    assert "the final save completed, nothing to resume" in captured.err and "saved " in captured.out
    weights = Layout(tmp_path / "ck").finetuned(ModelSpec("TinyCLIP").model_id, "TrainToyA", "standard")
    _, meta = load_weights(weights)
    assert meta["steps"] == 2 and not (weights.parent / "train_state").exists()


# verified reads hash an unchanged file once per process ---------------------------------------------

def test_an_unchanged_file_is_hashed_once_and_a_changed_one_again(tmp_path, monkeypatch):
    hashed = []
    real = checksums.file_digest
    monkeypatch.setattr(checksums, "file_digest", lambda path: hashed.append(Path(path).name) or real(path))
    checksums._digest_of.cache_clear()
    path = save_weights(tmp_path / "w.safetensors", {"w": torch.arange(64.0)}, {"v": 1})
    hashed.clear()  # the write hashes its temporary once
    for _ in range(3):
        load_weights(path)
    assert hashed == ["w.safetensors"]
    data = bytearray(path.read_bytes())
    data[-4] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, same inode: only the file times change
    with pytest.raises(DamagedFile):
        load_weights(path)
    assert hashed == ["w.safetensors"] * 2
