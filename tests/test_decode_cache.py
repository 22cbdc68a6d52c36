"""The decode-once cache (data/decoded.py): the cached tensors are the PIL pipeline's, bit for bit,
on real on-disk formats at real image sizes; it is verified, rebuilt when damaged or stale, refused
before writing when the disk is too small; `prepare_datasets.py cache` builds what runs read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fakedata
import numpy as np
import pytest
import torch
from PIL import Image

from task_arithmetic.data import decoded
from task_arithmetic.data.decoded import cached_dataset, load_images
from task_arithmetic.data.preprocessing import eval_stages, train_stages
from task_arithmetic.data.real import tool
from task_arithmetic.data.splits import load_dataset
from task_arithmetic.errors import UserError
from task_arithmetic.models.factory import ModelSpec, transforms_for

REPO = Path(__file__).resolve().parents[1]
TRAIN, VAL = transforms_for(ModelSpec("ViT-B-32", None))  # open_clip's 224 px transforms


def photo(path: Path, width: int, height: int, seed: int) -> None:
    """A photo-like JPEG (smooth colour fields plus grain): resampling and JPEG decoding do real work."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-20, 21, (height, width, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Fake EuroSAT (64 px), SUN397 (500x375, not square) and MNIST (28 px grey idx) in their real layouts."""
    root = tmp_path_factory.mktemp("decoded_data")
    size = fakedata.SIZE
    try:
        fakedata.SIZE = 28
        fakedata.make_mnist(root, n_train=20, n_test=5)
        fakedata.make_eurosat_raw(root, per_class=10)
        fakedata.make_sun397_raw(root, per_list=4)
    finally:
        fakedata.SIZE = size
    for i, path in enumerate(sorted((root / "EuroSAT_RGB").rglob("*.jpg"))):
        photo(path, 64, 64, i)
    for i, path in enumerate(sorted((root / "SUN397").rglob("*.jpg"))):
        photo(path, 500, 375, 100 + i)
    tool.split(root)
    return root


@pytest.mark.parametrize("task", ["EuroSAT", "SUN397", "MNIST"])
def test_cached_tensors_equal_the_pil_pipeline_bit_for_bit(data, task, capsys):
    for split in ("train", "val", "test"):
        reference = load_dataset(task, split, data, VAL)
        cached = cached_dataset(task, split, data, VAL)
        assert cached is not None and len(cached) == len(reference) > 0
        for i in range(len(reference)):
            (x, y), (cx, cy) = reference[i], cached[i]
            assert torch.equal(x, cx) and x.dtype == cx.dtype and int(y) == cy, (task, split, i)
    said = capsys.readouterr().err
    assert f"decode cache: {task} train (eval)" in said and "MB to" in said  # the size is stated before writing


def test_reopened_reused_damaged_or_stale_rebuilt(data, capsys, monkeypatch):
    first = cached_dataset("EuroSAT", "test", data, VAL)
    path, expected = first.file.path, first[0][0]
    built = []
    real_build = decoded._build
    monkeypatch.setattr(decoded, "_build", lambda *a: (built.append(a[2]), real_build(*a))[1])
    assert torch.equal(cached_dataset("EuroSAT", "test", data, VAL)[0][0], first[0][0]) and not built  # reused
    capsys.readouterr()

    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    again = cached_dataset("EuroSAT", "test", data, VAL)
    assert built == ["EuroSAT test (eval)"] and "is damaged" in capsys.readouterr().err
    assert torch.equal(again[0][0], expected)

    # an image replaced in place (same count, same names): the spot check notices it
    image = sorted((data / "EuroSAT_splits" / "test").rglob("*.jpg"))[0]
    original = image.read_bytes()
    try:
        photo(image, 64, 64, seed=999)
        fresh = cached_dataset("EuroSAT", "test", data, VAL)
        assert "differs from its cached record" in capsys.readouterr().err and len(built) == 2
        assert torch.equal(fresh[0][0], load_dataset("EuroSAT", "test", data, VAL)[0][0])
    finally:
        image.write_bytes(original)


def test_too_little_disk_or_too_large_is_refused_before_anything_is_written(data, monkeypatch, capsys):
    folder = data / "decoded"
    before = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    monkeypatch.setattr(decoded.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(UserError, match=r"needs .* GB in .*decoded, but 0.00 GB are free; free space there, or pass --decode-cache off"):
        cached_dataset("SUN397", "train", data, TRAIN, train_crop=True)  # asked for: an error
    # cached on first use only (here at 32 px, a cache no other test built): decoded every pass instead, said in one line
    small = transforms_for(ModelSpec("TinyCLIP", None))[1]
    assert cached_dataset("SUN397", "test", data, small) is None and "decoding every pass instead" in capsys.readouterr().err
    assert len(load_images("SUN397", "test", data, small)) > 0
    monkeypatch.undo()
    monkeypatch.setattr(decoded, "AUTO_LIMIT_BYTES", 1000)
    assert cached_dataset("SUN397", "test", data, small) is None and "prepare_datasets.py cache builds it anyway" in capsys.readouterr().err
    assert (sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []) == before


def test_train_crop_draws_the_pil_paths_box_from_records(data):
    def crops(task: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        cropped, pil = load_images(task, "train", data, TRAIN, train_crop=True), load_dataset(task, "train", data, TRAIN)
        pairs = []
        for i in range(len(pil)):
            torch.manual_seed(i)
            a = cropped[i][0]
            torch.manual_seed(i)
            pairs.append((a, pil[i][0]))
        return pairs

    # 500x375 photos are squashed into 256 px records (224 * 8/7): the same box, resampled twice
    assert load_images("SUN397", "train", data, TRAIN, train_crop=True).file.side == 256
    for a, b in crops("SUN397"):
        assert a.shape == b.shape == (3, 224, 224) and (a - b).abs().mean() < 0.03
    # 64 px squares are kept as they are: the crop is the PIL path's, bit for bit
    assert load_images("EuroSAT", "train", data, TRAIN, train_crop=True).file.side == 64
    assert all(torch.equal(a, b) for a, b in crops("EuroSAT"))
    square = load_images("EuroSAT", "train", data, TRAIN, train_crop=True)
    torch.manual_seed(0)
    first = square[0][0]
    torch.manual_seed(1)
    assert not torch.equal(first, square[0][0])  # a random crop: another seed, another crop


def test_prepare_datasets_cache_builds_what_runs_read(data, tmp_path, monkeypatch):
    command = [sys.executable, "src/prepare_datasets.py", "cache", "--data-location", str(data), "--tasks", "EuroSAT",
               "--model", "ViT-B-32", "--pretrained", "none", "--train-crop"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert out.returncode == 0, out.stderr
    assert "GB to write in" in out.stderr and "GB free" in out.stderr
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == ["EuroSAT train (eval, 224 px)", "EuroSAT val (eval, 224 px)",
                                                                      "EuroSAT test (eval, 224 px)", "EuroSAT train (train, 64 px)"]
    monkeypatch.setattr(decoded, "_build", lambda *a: pytest.fail(f"rebuilt {a[2]}"))
    assert len(cached_dataset("EuroSAT", "val", data, VAL)) == len(load_dataset("EuroSAT", "val", data, VAL))
    assert cached_dataset("EuroSAT", "train", data, TRAIN, train_crop=True) is not None
    bad = subprocess.run([*command[:4], str(tmp_path / "absent"), *command[5:]], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


def test_tensor_native_tasks_and_other_transforms_are_not_cached(tmp_path):
    assert cached_dataset("Digits", "test", tmp_path, VAL) is None  # the embedded tasks are tensors already
    assert eval_stages(TRAIN) is None and train_stages(VAL) is None
    with pytest.raises(UserError, match="--train-crop cache needs open_clip's training transform"):
        cached_dataset("EuroSAT", "train", tmp_path, VAL, train_crop=True)
