"""Decode once: the preprocessed images of a (dataset, split, preprocessing), cached as uint8.

The evaluation transform of open_clip (resize, centre crop, RGB, to tensor, normalise) is
deterministic up to its float stage, so its PIL stage runs once per image and the result is
stored as uint8 records in one memory-mapped file per (task, split: train, val or test, exactly
the items the runs read); a pass over the data then only converts
records to float and normalises them, with the transform's own tensor stage, so every value is
bit for bit what the PIL pipeline gives. The file is verified like the suite's other caches:
its sha256 is recorded in the JSON beside it and checked when a process first opens it, its
name carries a fingerprint of the preprocessing (the PIL stage, Pillow and torchvision
versions), and every open decodes a few images again and compares them with their records (a
dataset replaced in place, same size, is noticed and the cache rebuilt, saying so).

Training's random crop cannot be cached, so `--train-crop cache` caches each image squashed to
train_side(size) = size * 8/7 square (256 px for 224) and takes RandomResizedCrop's box, drawn
from the original image size with the same random numbers as the PIL path, from that record
(Pillow, the transform's filter, the box in sub-pixel coordinates). That resamples twice instead
of once, so it is not exact: its accuracy effect is measured in the README. A split of square
images no larger than that (MNIST, EuroSAT, RESISC45, CIFAR) keeps its images as they are, and
there the crop is exactly the PIL path's.

Caches live in `<data_location>/decoded/`, are shared by every run and evaluation, are built on
first use (or by `prepare_datasets.py cache`) under a lock, and their size is printed, and checked
against the free space, before anything is written. Built on first use they stay under
AUTO_LIMIT_BYTES (ImageNet's 1.27 million training images, the tau-Jp control, are decoded every
pass unless `prepare_datasets.py cache` is asked for them). Tensor-native tasks (the embedded ones) are
already in memory and are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import PIL
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset

from ..errors import UserError
from ..io import atomic_stream, atomic_write_json, metadata_path, read_json_object
from ..runtime import usable_cores
from ..storage.checksums import DIGEST_KEY, DamagedFile, verify_digest
from ..storage.locks import FileLock
from ..storage.write_errors import WriteFailed
from .preprocessing import RecordOf, Stages, crop_record, eval_stages, fit_train_side, train_stages
from .registry import get_task
from .splits import SPLITS

CACHE_FORMAT = "decoded_images"
CACHE_VERSION = 1
FOLDER = "decoded"
SPOT_CHECKS = 4  # images decoded again on every open and compared with their records
_BUILD_BATCH = 64
_MARGIN = 256 * 2**20  # free space kept beyond the file when building
# Caches built on first use stay under this size: a 224 px record is 147 KB, so this is ~140 000
# images (every split of real8 but ImageNet's train set, the tau-Jp control's 1.27 million, which
# would take 188 GB for the few thousand penalty inputs a run draws from it).
AUTO_LIMIT_BYTES = 20 * 2**30


def _collate(items):
    records, labels = zip(*items)
    return (np.stack([r[0] for r in records]), np.array([[r[1], r[2]] for r in records], dtype=np.int32),
            np.array([int(label) for label in labels], dtype=np.int64))


@dataclass(frozen=True)
class CacheFile:
    path: Path  # the uint8 records; its JSON beside it describes them
    count: int
    side: int

    @property
    def nbytes(self) -> int:
        return self.count * self.side * self.side * 3


class DecodedImages(Dataset):
    """(tensor, label) from a cache file: records converted as the transform's ToTensor and
    Normalize would (eval), or randomly cropped first (train). Memory-mapped, so every worker
    process shares the page cache instead of holding a copy."""

    def __init__(self, file: CacheFile, labels: np.ndarray, sizes: np.ndarray, stages: Stages):
        self.file, self.labels, self.sizes, self.stages = file, labels, sizes, stages
        self._records: np.memmap | None = None
        self._norms: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def __len__(self) -> int:
        return self.file.count

    def __getstate__(self) -> dict:  # worker processes map the file themselves
        return {**self.__dict__, "_records": None, "_norms": None}

    def records(self) -> np.memmap:
        if self._records is None:
            self._records = np.memmap(self.file.path, dtype=np.uint8, mode="r", shape=(self.file.count, self.file.side, self.file.side, 3))
        return self._records

    def __getitem__(self, index: int):
        record = np.array(self.records()[index])  # uint8 HWC, own memory
        if self.stages.crop is not None:
            record = crop_record(record, int(self.sizes[index][0]), int(self.sizes[index][1]), self.stages.crop)
        chw = torch.from_numpy(record).permute(2, 0, 1)
        # torchvision's to_tensor of a uint8 image (to float, / 255), then each Normalize's
        # sub_(mean).div_(std): the same operations in the same order, done in place (a copy less each)
        image = chw.contiguous().to(dtype=torch.get_default_dtype()).div_(255)
        for mean, std in self._normalisation(image.dtype):
            image.sub_(mean).div_(std)
        return image, int(self.labels[index])

    def _normalisation(self, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._norms is None:
            self._norms = [(torch.as_tensor(t.mean, dtype=dtype).view(-1, 1, 1), torch.as_tensor(t.std, dtype=dtype).view(-1, 1, 1))
                           for t in self.stages.tensor]
        return self._norms


def _fingerprint(task: str, split: str, count: int, stages: Stages) -> str:
    key = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "task": task, "split": split, "count": count, "kind": stages.kind,
           "pil": stages.describe(), "pillow": PIL.__version__, "torchvision": torchvision.__version__}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def cache_file(root: Path, task: str, split: str, count: int, stages: Stages) -> CacheFile:
    name = f"{task}-{split}-{stages.kind}{stages.side}-{_fingerprint(task, split, count, stages)}.u8"
    return CacheFile(Path(root) / FOLDER / name, count, stages.side)


def _spot_indices(count: int) -> list[int]:
    return sorted({round(i * (count - 1) / max(SPOT_CHECKS - 1, 1)) for i in range(SPOT_CHECKS)}) if count else []


def _open(file: CacheFile, raw: Dataset, stages: Stages) -> DecodedImages | None:
    """The cache when it is complete, intact and still the dataset's images; None otherwise (said once)."""
    meta_file = metadata_path(file.path)
    if not meta_file.is_file() or not file.path.is_file():
        return None
    meta = read_json_object(meta_file)
    if meta.get("format") != CACHE_FORMAT or meta.get("count") != file.count or meta.get("side") != file.side:
        return None
    try:
        verify_digest(file.path, meta.get(DIGEST_KEY))
    except DamagedFile as err:
        print(f"{file.path} is damaged ({err.detail.split(';')[0]}); rebuilding it", file=sys.stderr)
        return None
    labels, sizes = np.asarray(meta["labels"], dtype=np.int64), np.asarray(meta["sizes"], dtype=np.int32)
    dataset = DecodedImages(file, labels, sizes, stages)
    records = dataset.records()
    for i in _spot_indices(file.count):
        record, width, height = raw[i][0]
        if not np.array_equal(record, records[i]) or [width, height] != sizes[i].tolist() or int(raw[i][1]) != labels[i]:
            print(f"{file.path}: image {i} of the dataset differs from its cached record (the data changed); rebuilding it", file=sys.stderr)
            return None
    return dataset


def _room(file: CacheFile, what: str, required: bool) -> bool:
    """Whether the cache may be written: it fits the disk and, when the caller only opportunistically
    caches (the default for every evaluation and the penalty inputs), it is under AUTO_LIMIT_BYTES.
    A cache that is asked for (--train-crop cache, prepare_datasets.py cache) and does not fit is an
    error; an opportunistic one is skipped, saying so once, and the images are decoded every pass."""
    folder = file.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < file.nbytes + _MARGIN:
        message = f"decoding {what} once needs {file.nbytes / 2**30:.2f} GB in {folder}, but {free / 2**30:.2f} GB are free"
        if required:
            raise UserError(f"{message}; free space there, or pass --decode-cache off")
        print(f"decode cache: {message}; decoding every pass instead", file=sys.stderr, flush=True)
        return False
    if not required and file.nbytes > AUTO_LIMIT_BYTES:
        print(f"decode cache: {what} would take {file.nbytes / 2**30:.1f} GB (over the {AUTO_LIMIT_BYTES / 2**30:.0f} GB built on first use); "
              "decoding every pass (prepare_datasets.py cache builds it anyway)", file=sys.stderr, flush=True)
        return False
    return True


def _build(file: CacheFile, raw: Dataset, what: str) -> None:
    """Decode every image once into the records file; its JSON (labels, sizes, sha256) goes last."""
    print(f"decode cache: {what}, {file.count} images at {file.side}x{file.side} px: writing {file.nbytes / 2**20:.0f} MB to {file.path}",
          file=sys.stderr, flush=True)
    workers = min(8, usable_cores()) if file.count > 4 * _BUILD_BATCH else 0
    loader = DataLoader(raw, batch_size=_BUILD_BATCH, num_workers=workers, collate_fn=_collate)
    digest, labels, sizes, written = hashlib.sha256(), [], [], 0
    with atomic_stream(file.path, file.nbytes) as handle:
        for records, batch_sizes, batch_labels in loader:
            if records.shape[1:] != (file.side, file.side, 3):
                raise UserError(f"{what}: the preprocessing gave {records.shape[1:]} arrays, expected {file.side}x{file.side}x3; "
                                "pass --decode-cache off for this transform")
            data = np.ascontiguousarray(records).tobytes()
            handle.write(data)
            digest.update(data)
            labels += batch_labels.tolist()
            sizes += batch_sizes.tolist()
            written += len(records)
        if written != file.count:
            raise UserError(f"{what}: the dataset gave {written} images, {file.count} expected; check the data under --data-location")
        metadata_path(file.path).unlink(missing_ok=True)  # the JSON marks a complete file: never old JSON beside new records
    atomic_write_json(metadata_path(file.path), {"format": CACHE_FORMAT, "version": CACHE_VERSION, "count": file.count, "side": file.side,
                                                 "what": what, "labels": labels, "sizes": sizes, DIGEST_KEY: digest.hexdigest()})


def _source(task: str, split: str, root: Path, stages: Stages) -> tuple[Dataset, Stages, CacheFile]:
    """The split (train, val or test: exactly the items the runs read) through the stages' PIL part
    (the training side fitted to its images), and its cache file."""
    from .splits import load_dataset

    name = get_task(task).name
    if stages.kind == "train":
        probe = load_dataset(name, split, root, lambda image: image.size)
        if len(probe):  # type: ignore[arg-type]
            stages = fit_train_side(stages, probe[0][0])
    raw = load_dataset(name, split, root, RecordOf(stages.pil))
    return raw, stages, cache_file(root, name, split, len(raw), stages)  # type: ignore[arg-type]


def decoded_split(task: str, split: str, data_location: Path, stages: Stages, required: bool = True) -> DecodedImages | None:
    """`task`'s split through `stages`, from its cache, built if needed; None when an unrequired
    cache would not fit (see _room)."""
    raw, stages, file = _source(task, split, Path(data_location), stages)
    opened = _open(file, raw, stages)
    if opened is not None:
        return opened
    what = f"{get_task(task).name} {split} ({stages.kind})"
    if not _room(file, what, required):
        return None
    with FileLock(file.path.with_name(file.path.name + ".lock"), what=f"decode cache {file.path}", wait_s=None):
        opened = _open(file, raw, stages)  # another process may have built it while we waited
        if opened is None:
            _build(file, raw, what)
            opened = _open(file, raw, stages)
    if opened is None:  # pragma: no cover - a file that fails its checks right after being written
        raise UserError(f"{file.path} could not be verified right after it was written; check the disk, or pass --decode-cache off")
    return opened


# ---- what the loaders call ----------------------------------------------------------------------------

_UNWRITABLE: set[str] = set()


def writable(data_location: Path) -> bool:
    """Whether caches can be written under `data_location` (said once per folder when not)."""
    folder = Path(data_location) / FOLDER
    probe = folder if folder.is_dir() else Path(data_location)
    ok = probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
    if not ok and str(folder) not in _UNWRITABLE:
        _UNWRITABLE.add(str(folder))
        print(f"decode cache: {folder} cannot be written; images are decoded on every pass (make it writable to cache them)", file=sys.stderr)
    return ok


def cached_dataset(task: str, split: str, data_location: Path, transform: Callable | None, train_crop: bool = False) -> Dataset | None:
    """`load_dataset(task, split, data_location, transform)` served from the decode cache, or None
    where there is nothing to cache (a tensor-native task, a transform of another shape, a
    read-only data folder). train_crop: `transform` is the training transform, cropped on records."""
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
    spec = get_task(task)
    if spec.tensor_native or transform is None:
        return None
    stages = train_stages(transform) if train_crop else eval_stages(transform)
    if stages is None:
        if train_crop:
            raise UserError(f"--train-crop cache needs open_clip's training transform (RandomResizedCrop, RGB, ToTensor, Normalize); "
                            f"this model's is {transform}; pass --train-crop pil")
        return None
    if not writable(data_location):
        return None
    try:
        return decoded_split(spec.name, split, Path(data_location), stages, required=train_crop)
    except WriteFailed as err:
        raise UserError(f"{err}; or pass --decode-cache off") from err


def load_images(task: str, split: str, data_location: Path, transform: Callable | None, decode_cache: bool = True,
                train_crop: bool = False) -> Dataset:
    """The dataset every loader reads: from the decode cache where it applies, else decoded on
    every pass (splits.load_dataset). train_crop (training's --train-crop cache) must be served
    from the cache: it changes the trained weights, so it never falls back silently."""
    from .splits import load_dataset

    if train_crop:
        if not decode_cache:
            raise UserError("--train-crop cache crops cached images; it cannot be combined with --decode-cache off")
        if not get_task(task).tensor_native and not writable(data_location):
            raise UserError(f"--train-crop cache needs a writable {Path(data_location) / FOLDER}; make it writable or pass --train-crop pil")
    dataset = cached_dataset(task, split, data_location, transform, train_crop) if decode_cache else None
    return dataset if dataset is not None else load_dataset(task, split, data_location, transform)


def prepare(data_location: Path, tasks: Sequence[str], train: Callable, val: Callable, train_crop: bool = False) -> list[str]:
    """`prepare_datasets.py cache`: build the caches a model's runs and evaluations read (the
    evaluation transform of each train, val and test split, and with train_crop the training records),
    after stating their total size and checking it against the free space. One line per cache."""
    root = Path(data_location)
    if not root.is_dir():
        raise UserError(f"--data-location {root} is not a folder; pass the folder that holds the datasets")
    wanted: list[tuple[str, str, Stages]] = []
    eval_stage = eval_stages(val)
    if eval_stage is None:
        raise UserError(f"this model's evaluation transform cannot be cached ({val}); runs decode every pass")
    crop_stage = train_stages(train) if train_crop else None
    if train_crop and crop_stage is None:
        raise UserError(f"this model's training transform is not open_clip's RandomResizedCrop pipeline ({train}); drop --train-crop")
    for task in tasks:
        if get_task(task).tensor_native:
            continue
        wanted += [(task, split, eval_stage) for split in SPLITS] + ([(task, "train", crop_stage)] if crop_stage else [])
    files = []
    for task, split, stages in wanted:
        _, fitted, file = _source(task, split, root, stages)
        files.append((task, split, fitted, file))
    todo = [f for f in files if not metadata_path(f[3].path).is_file()]
    total = sum(f[3].nbytes for f in todo)
    (root / FOLDER).mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root / FOLDER).free
    print(f"decode cache: {len(files)} caches for {len(tasks)} tasks, {len(todo)} to build: {total / 2**30:.2f} GB to write in {root / FOLDER} "
          f"({free / 2**30:.1f} GB free)", file=sys.stderr, flush=True)
    if free < total + _MARGIN:
        raise UserError(f"the caches need {total / 2**30:.2f} GB in {root / FOLDER}, but {free / 2**30:.2f} GB are free; free space there or cache fewer --tasks")
    lines = []
    for task, split, stages, file in files:
        dataset = decoded_split(task, split, root, stages, required=True)
        assert dataset is not None
        lines.append(f"{task} {split} ({stages.kind}, {dataset.file.side} px): {len(dataset)} images, {file.nbytes / 2**20:.0f} MB, {file.path.name}")
    return lines
