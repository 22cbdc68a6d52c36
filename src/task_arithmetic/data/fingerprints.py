"""Split fingerprints and the train/test leak check.

Each example gets a key: its file's last two path parts (class folder and file name) where the
example is a file, else a digest of its stored bytes (a hub copy's encoded image, a row of an
in-memory array). A part's fingerprint is a digest of its sorted (key, label) pairs, so it changes
when one example enters or leaves the part, or changes label, and not with the order of reading.
Train and Val are the parts of the official train split that splits.py cuts (min(10 %, 5000),
seed 0), so a different hold-out changes both.

Fingerprints are written with every fine-tuned model (training/loop.py) and every result file
(evaluation/session.py) and shown in the report: two results on different splits or copies of a
task never compare silently. Keys cost no image decoding; hub copies read their image bytes once
per process (memory-mapped).

The leak check hashes the content of every train and test example (file bytes, encoded image
bytes, array rows) and reports identical ones found on both sides. Exact duplicates only: a
re-encoded or resized copy of an image is not found.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, cast

import numpy as np
from torch.utils.data import Dataset, Subset

from .registry import get_task
from .splits import split_train_val

PARTS = ("train", "val", "test")


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _rows(array: Any) -> list[str]:
    values = array.numpy() if hasattr(array, "numpy") else np.asarray(array)
    values = np.ascontiguousarray(values)
    return [_digest(row.tobytes()) for row in values]


def _labels(values: Any) -> list[int]:
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    return [int(v) for v in values]


def _file_key(path: Any) -> str:
    return "/".join(Path(str(path)).parts[-2:])


def example_keys(dataset: Dataset) -> tuple[list[str], list[int]]:
    """(key, label) of every example, in index order, without decoding images where the dataset
    keeps its file list or its arrays (every reader the suite uses); anything else is read item by item."""
    if isinstance(dataset, Subset):
        keys, labels = example_keys(dataset.dataset)
        return [keys[i] for i in dataset.indices], [labels[i] for i in dataset.indices]
    if hasattr(dataset, "example_keys"):  # hub copies, the FER2013 CSV
        return dataset.example_keys()
    samples = getattr(dataset, "samples", None) or getattr(dataset, "_samples", None)  # ImageFolder, GTSRB, StanfordCars, RenderedSST2
    if samples is not None:
        return [_file_key(path) for path, _ in samples], [int(label) for _, label in samples]
    files = getattr(dataset, "_image_files", None) or getattr(dataset, "_images", None)  # Food101, Flowers102, OxfordIIITPet
    own_labels = getattr(dataset, "_labels", None)
    if files is not None and own_labels is not None:
        return [_file_key(path) for path in files], _labels(own_labels)
    tensors = getattr(dataset, "tensors", None)  # TensorDataset (the embedded tasks)
    if tensors is not None and len(tensors) == 2:
        return _rows(tensors[0]), _labels(tensors[1])
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", getattr(dataset, "labels", None))
    if data is not None and targets is not None and not isinstance(data, (str, Path)):  # MNIST-likes, CIFAR, SVHN, STL10
        keys, labels = _rows(data), _labels(targets)
        target_transform = getattr(dataset, "target_transform", None)
        return keys, [int(target_transform(v)) for v in labels] if target_transform is not None else labels
    if type(dataset).__name__.startswith("PCAM"):  # HDF5 read lazily: the key is the position in the official file
        return _pcam_keys(dataset)
    return _read_keys(dataset)


def _pcam_keys(dataset: Any) -> tuple[list[str], list[int]]:
    import h5py

    with h5py.File(Path(dataset._base_folder) / dataset._FILES[dataset._split]["targets"][0]) as file:
        labels = [int(v) for v in np.asarray(file["y"]).reshape(-1)]
    return [f"{dataset._split}:{i}" for i in range(len(labels))], labels


def _pcam_content(dataset: Any) -> tuple[list[str], list[int]]:
    import h5py

    _, labels = _pcam_keys(dataset)
    hashes: list[str] = []
    with h5py.File(Path(dataset._base_folder) / dataset._FILES[dataset._split]["images"][0]) as file:
        images = file["x"]
        for start in range(0, images.shape[0], 4096):  # blocks: one HDF5 read per 4096 patches
            hashes += _rows(images[start : start + 4096])
    return hashes, labels


def _read_keys(dataset: Dataset) -> tuple[list[str], list[int]]:
    keys, labels = [], []
    for index in range(len(dataset)):  # type: ignore[arg-type]
        item, label = dataset[index]
        keys.append(_digest(_content(item)))
        labels.append(int(label))
    return keys, labels


def _content(item: Any) -> bytes:
    if hasattr(item, "tobytes") and hasattr(item, "mode"):  # PIL
        return f"{item.mode}{item.size}".encode() + item.tobytes()
    if hasattr(item, "numpy"):
        return item.detach().cpu().numpy().tobytes()
    return np.asarray(item).tobytes()


def part_fingerprint(keys: Sequence[str], labels: Sequence[int]) -> str:
    lines = sorted(f"{key}\t{label}" for key, label in zip(keys, labels))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _source(task: str, data_location: Path) -> str:
    from .real import DATASETS

    dataset = DATASETS.get(task)
    return dataset.source(data_location) if dataset is not None else f"registered task ({get_task(task).benchmark})"


_CACHE: dict[tuple[str, str], dict[str, Any]] = {}


def task_fingerprints(task: str, data_location: Path) -> dict[str, Any]:
    """{"source", "train": {"n", "fingerprint"}, "val": ..., "test": ...} for one task (cached per process)."""
    spec = get_task(task)
    key = (spec.name, str(Path(data_location).resolve()))
    if key not in _CACHE:
        root = Path(data_location)
        train_keys, train_labels = example_keys(spec.load_split(root, "train", None))
        train_idx, val_idx = split_train_val(len(train_keys))
        test_keys, test_labels = example_keys(spec.load_split(root, "test", None))
        parts = {
            "train": ([train_keys[i] for i in train_idx], [train_labels[i] for i in train_idx]),
            "val": ([train_keys[i] for i in val_idx], [train_labels[i] for i in val_idx]),
            "test": (test_keys, test_labels),
        }
        _CACHE[key] = {"source": _source(spec.name, root), **{part: {"n": len(k), "fingerprint": part_fingerprint(k, lbl)} for part, (k, lbl) in parts.items()}}
    return _CACHE[key]


def fingerprints_or_reason(tasks: Sequence[str], data_location: Path) -> dict[str, Any]:
    """Every task's fingerprints; a task whose data cannot be read gets {"unavailable": reason}
    instead, so provenance never stops a finished run or evaluation from being saved."""
    found: dict[str, Any] = {}
    for task in dict.fromkeys(tasks):
        try:
            found[task] = task_fingerprints(task, data_location)
        except Exception as err:  # noqa: BLE001 - recorded, never raised: the weights/results matter more
            found[task] = {"unavailable": f"{type(err).__name__}: {err}"}
    return found


def short(entry: dict[str, Any]) -> str:
    """'train 3f2a… / val 9c01… / test 77aa…' for the report."""
    if "unavailable" in entry:
        return f"unavailable ({entry['unavailable']})"
    return " / ".join(f"{part} {entry[part]['fingerprint'][:8]} ({entry[part]['n']})" for part in PARTS if part in entry)


# -- the leak check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leak:
    train_index: int
    test_index: int
    train_label: int
    test_label: int


def content_hashes(dataset: Dataset) -> tuple[list[str], list[int]]:
    """A digest of every example's stored content (file bytes, encoded image bytes, array rows)."""
    if isinstance(dataset, Subset):
        hashes, labels = content_hashes(dataset.dataset)
        return [hashes[i] for i in dataset.indices], [labels[i] for i in dataset.indices]
    if hasattr(dataset, "content_hashes"):  # such datasets have labels() too
        return dataset.content_hashes(), cast(Any, dataset).labels()
    samples = getattr(dataset, "samples", None) or getattr(dataset, "_samples", None)
    files = getattr(dataset, "_image_files", None) or getattr(dataset, "_images", None)
    if samples is not None:
        return [_digest(Path(path).read_bytes()) for path, _ in samples], [int(label) for _, label in samples]
    own_labels = getattr(dataset, "_labels", None)
    if files is not None and own_labels is not None:
        return [_digest(Path(path).read_bytes()) for path in files], _labels(own_labels)
    if type(dataset).__name__.startswith("PCAM"):
        return _pcam_content(dataset)
    return example_keys(dataset)  # array rows (and item-by-item reads) are content already


def find_leaks(task: str, data_location: Path) -> list[Leak]:
    spec = get_task(task)
    root = Path(data_location)
    train_hashes, train_labels = content_hashes(spec.load_split(root, "train", None))
    test_hashes, test_labels = content_hashes(spec.load_split(root, "test", None))
    first_in_train: dict[str, int] = {}
    for index, digest in enumerate(train_hashes):
        first_in_train.setdefault(digest, index)
    return [
        Leak(first_in_train[digest], index, train_labels[first_in_train[digest]], test_labels[index])
        for index, digest in enumerate(test_hashes)
        if digest in first_in_train
    ]
