"""Small copies of Hugging Face hub datasets in each repository's own layout, written with the
real libraries: parquet files by `datasets` (image column as encoded PNG bytes, label as a
ClassLabel, or a bool as in 1aurent/PatchCamelyon), and webdataset tars (<key>.jpg + <key>.cls,
as in clip-benchmark/wds_fer2013). File names follow the repositories' trees (hub_sources.py).

Every image is distinct (a seeded noise pattern) and carries its label in its top-left pixel, so
tests can check that labels travel with their images.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

DTD_NAMES = (
    "banded blotchy braided bubbly bumpy chequered cobwebbed cracked crosshatched crystalline dotted fibrous flecked freckled frilly gauzy "
    "grid grooved honeycombed interlaced knitted lacelike lined marbled matted meshed paisley perforated pitted pleated polka-dotted porous "
    "potholed scaly smeared spiralled sprinkled stained stratified striped studded swirly veined waffled woven wrinkled zigzagged"
).split()
EUROSAT_FOLDERS = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop", "Residential", "River", "SeaLake")
FER_ALPHABETICAL = ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")


def png(seed: int, label: int, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    pixels[0, 0] = (label, 255 - label, 7)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def label_of(image) -> int:
    return image.convert("RGB").getpixel((0, 0))[0]


def examples(labels: list[int], seed: int) -> list[tuple[bytes, int]]:
    return [(png(seed * 1000 + i, label), label) for i, label in enumerate(labels)]


def write_parquet(path: Path, rows: list[tuple[bytes, int]], names: list[str] | None = None, boolean: bool = False) -> None:
    import datasets

    if boolean:
        label = datasets.Value("bool")
    elif names is None:
        label = datasets.Value("int64")
    else:
        label = datasets.ClassLabel(names=list(names))
    features = datasets.Features({"image": datasets.Image(), "label": label})
    values = [bool(v) for _, v in rows] if boolean else [v for _, v in rows]
    table = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b, _ in rows], "label": values}, features=features)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(str(path))


def write_tar(path: Path, rows: list[tuple[bytes, int]], start: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for offset, (image, label) in enumerate(rows):
            for suffix, data in (("jpg", image), ("cls", str(label).encode())):
                info = tarfile.TarInfo(f"s{start + offset:07d}.{suffix}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))


def readme(folder: Path, repo: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(f"---\npretty_name: {repo} (test copy)\n---\n")


def cycle(n: int, classes: int, offset: int = 0) -> list[int]:
    return [(i + offset) % classes for i in range(n)]


# -- one copy per kind ------------------------------------------------------------------------------


def dtd(folder: Path, n_train: int = 20, n_test: int = 10) -> dict:
    """tanganke/dtd: data/{train,test}-00000-of-00001.parquet, ClassLabel names."""
    train, test = examples(cycle(n_train, 47), 1), examples(cycle(n_test, 47, 5), 2)
    readme(folder, "tanganke/dtd")
    write_parquet(folder / "data/train-00000-of-00001.parquet", train, DTD_NAMES)
    write_parquet(folder / "data/test-00000-of-00001.parquet", test, DTD_NAMES)
    return {"train": train, "test": test}


def svhn(folder: Path, n_train: int = 20, n_test: int = 10) -> dict:
    """ufldl-stanford/svhn, config cropped_digits (cropped_digits/{train,test,extra}-*.parquet) beside
    a full_numbers config the reader must not touch."""
    digits = [str(d) for d in range(10)]
    train, test = examples(cycle(n_train, 10), 3), examples(cycle(n_test, 10, 3), 4)
    readme(folder, "ufldl-stanford/svhn")
    write_parquet(folder / "cropped_digits/train-00000-of-00001.parquet", train, digits)
    write_parquet(folder / "cropped_digits/test-00000-of-00001.parquet", test, digits)
    write_parquet(folder / "cropped_digits/extra-00000-of-00002.parquet", examples(cycle(5, 10), 5), digits)
    write_parquet(folder / "full_numbers/train-00000-of-00001.parquet", examples(cycle(7, 10), 6), digits)
    return {"train": train, "test": test}


def fer2013(folder: Path, n_train: int = 21, n_test: int = 7) -> dict:
    """clip-benchmark/wds_fer2013: webdataset shards {train,test}/<k>.tar of <key>.jpg + <key>.cls,
    classnames.txt in the copy's (alphabetical) label order; columns jpg and cls."""
    train, test = examples(cycle(n_train, 7), 7), examples(cycle(n_test, 7, 2), 8)
    readme(folder, "clip-benchmark/wds_fer2013")
    half = len(train) // 2
    write_tar(folder / "train/0.tar", train[:half])
    write_tar(folder / "train/1.tar", train[half:], start=half)
    write_tar(folder / "test/0.tar", test)
    (folder / "train/nshards.txt").write_text("2")
    (folder / "test/nshards.txt").write_text("1")
    (folder / "classnames.txt").write_text("".join(f"{name}\n" for name in FER_ALPHABETICAL))
    return {"train": train, "test": test}


def food101(folder: Path, n_train: int = 12, n_test: int = 6) -> dict:
    """ethz/food101: data/train-*-of-00002.parquet and data/validation-*.parquet (FusionBench's test)."""
    names = ["apple_pie", "baby_back_ribs", "baklava"]
    train, test = examples(cycle(n_train, 3), 9), examples(cycle(n_test, 3, 1), 10)
    readme(folder, "ethz/food101")
    write_parquet(folder / "data/train-00000-of-00002.parquet", train[: n_train // 2], names)
    write_parquet(folder / "data/train-00001-of-00002.parquet", train[n_train // 2 :], names)
    write_parquet(folder / "data/validation-00000-of-00001.parquet", test, names)
    return {"train": train, "test": test}


def pcam(folder: Path, n_train: int = 10, n_test: int = 4) -> dict:
    """1aurent/PatchCamelyon: data/{train,valid,test}-*-<hash>.parquet, label a bool."""
    train, test = examples(cycle(n_train, 2), 11), examples(cycle(n_test, 2), 12)
    readme(folder, "1aurent/PatchCamelyon")
    write_parquet(folder / "data/train-00000-of-00001-4717c3cf92578c96.parquet", train, boolean=True)
    write_parquet(folder / "data/valid-00000-of-00001-aaaaaaaaaaaaaaaa.parquet", examples(cycle(3, 2), 13), boolean=True)
    write_parquet(folder / "data/test-00000-of-00001-bb04e6313f58efa0.parquet", test, boolean=True)
    return {"train": train, "test": test}


def simple(folder: Path, names: list[str] | None, n_classes: int, seed: int, n_train: int = 12, n_test: int = 6) -> dict:
    """A plain data/{train,test}-00000-of-00001.parquet copy (the tanganke/* repositories)."""
    train, test = examples(cycle(n_train, n_classes), seed), examples(cycle(n_test, n_classes, 1), seed + 50)
    readme(folder, folder.name)
    write_parquet(folder / "data/train-00000-of-00001.parquet", train, names)
    write_parquet(folder / "data/test-00000-of-00001.parquet", test, names)
    return {"train": train, "test": test}


def hub_cache_copy(copy: Path, hub_cache: Path, repo: str, revision: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Place a copy where huggingface_hub keeps downloads: blobs, a snapshot of symlinks, refs/main."""
    owner, name = repo.split("/")
    base = hub_cache / f"datasets--{owner}--{name}"
    snapshot = base / "snapshots" / revision
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        blob = base / "blobs" / f"{abs(hash(path.read_bytes())):x}{path.stat().st_size}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(copy)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(revision)
    return snapshot
