"""Reading a task's Hugging Face hub copy: the repository's own files (parquet, or webdataset tars)
read by the `datasets` library, which turns them once into memory-mapped Arrow files in its
cache; no export to image folders.

A copy is found, in this order, at
  <data-location>/hf/<owner>/<name>/                 what `prepare_datasets.py download` writes
  <HF hub cache>/datasets--<owner>--<name>/snapshots/<revision>/
                                                     what `datasets.load_dataset(repo)` left there
                                                     (a FusionBench user's cache; HF_HOME / HF_HUB_CACHE)
Only local files are read: nothing here reaches the network.

Label order: the copy's own label names (its ClassLabel, or the names file of a webdataset copy)
are matched against the suite's class list. Names that are only their index ("0".."9") carry no
order and are taken in the suite's order; names that are the suite's classes in another order
give the class list in the copy's order (so labels and heads agree); anything else is refused.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from torch.utils.data import Dataset

from ...errors import UserError

if TYPE_CHECKING:  # hub_sources imports the task modules, which import common.py, which reads copies through here
    from .hub_sources import HubSource

HUB_FOLDER = "hf"  # under --data-location
_SPLITS = ("train", "test")


def copy_folder(source: HubSource, root: Path) -> Path:
    owner, name = source.owner_name
    return Path(root) / HUB_FOLDER / owner / name


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(source: HubSource) -> Path | None:
    """The hub cache's snapshot of the repository (the one refs/main names, else the newest)."""
    owner, name = source.owner_name
    repo = _hub_cache() / f"datasets--{owner}--{name}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
        return snapshots / ref.read_text().strip()
    found = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def split_files(source: HubSource, folder: Path) -> dict[str, list[Path]]:
    """Our split -> the copy's files holding it (sorted; empty when absent)."""
    relative = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()]
    relative = [r for r in relative if not r.startswith(".cache/")]  # huggingface_hub's own bookkeeping in a local_dir
    return {split: sorted(folder / r for r in relative if any(fnmatch.fnmatch(r, pat) for pat in source.patterns(split))) for split in _SPLITS}


def is_complete(source: HubSource, folder: Path) -> bool:
    if not folder.is_dir():
        return False
    files = split_files(source, folder)
    names_ok = source.names_file is None or (folder / source.names_file).is_file()
    return names_ok and all(files[split] for split in _SPLITS)


@dataclass(frozen=True)
class HubCopy:
    source: HubSource
    folder: Path
    origin: str  # "data-location" or "hf-cache"

    def describe(self) -> str:
        where = "the Hugging Face cache" if self.origin == "hf-cache" else "--data-location"
        return f"hub copy {self.source.repo}{'/' + self.source.config if self.source.config else ''} in {where} ({self.folder})"

    def load(self):
        """The DatasetDict {train, test} (Arrow, memory-mapped), prepared on the first call."""
        key = (str(self.folder), self.source.task)
        if key not in _LOADED:
            _LOADED[key] = _load(self.source, self.folder)
        return _LOADED[key]

    def split(self, split: str, transform: Callable | None) -> Dataset:
        data = self.load()[split]
        return HubSplit(data, self.source.image, self.source.label, transform)

    def classnames(self) -> list[str]:
        data = self.load()
        return match_classnames(self.source, label_names(self.source, self.folder, data["train"]), _label_range(data, self.source.label))


_LOADED: dict[tuple[str, str], Any] = {}


def find_copy(source: HubSource | None, root: Path) -> HubCopy | None:
    if source is None:
        return None
    folder = copy_folder(source, root)
    if is_complete(source, folder):
        return HubCopy(source, folder, "data-location")
    try:
        snapshot = cached_snapshot(source)
    except ImportError:
        return None
    if snapshot is not None and is_complete(source, snapshot):
        return HubCopy(source, snapshot, "hf-cache")
    return None


def require_datasets():
    try:
        import datasets
    except ImportError:
        raise UserError("reading Hugging Face hub copies needs the `datasets` package (pip install datasets; it is in requirements.txt)") from None
    return datasets


def _load(source: HubSource, folder: Path):
    datasets = require_datasets()
    files = split_files(source, folder)
    try:
        loaded = datasets.load_dataset(source.builder, data_files={split: [str(p) for p in files[split]] for split in _SPLITS})
    except Exception as err:  # a damaged or foreign file: name the copy and the fix
        raise UserError(f"{source.task}: cannot read the {source.repo} copy in {folder}: {type(err).__name__}: {err}; delete the folder and download it again") from None
    for split in _SPLITS:
        columns = loaded[split].column_names
        lacking = [c for c in (source.image, source.label) if c not in columns]
        if lacking:
            raise UserError(f"{source.task}: the {split} split of {folder} has no column {', '.join(lacking)} (columns: {', '.join(columns)}); it is not a copy of {source.repo}")
        if len(loaded[split]) == 0:
            raise UserError(f"{source.task}: the {split} split of {folder} is empty; delete the folder and download it again")
    return loaded


def label_names(source: HubSource, folder: Path, train) -> list[str] | None:
    """The copy's label names in label order, or None when it has none (plain integers or booleans)."""
    if source.names_file is not None:
        return [line.strip() for line in (folder / source.names_file).read_text().splitlines() if line.strip()]
    feature = train.features[source.label]
    return list(feature.names) if hasattr(feature, "names") else None


def _label_range(data, column: str) -> tuple[int, int]:
    import pyarrow.compute as pc

    lows, highs = [], []
    for split in _SPLITS:
        values = data[split].data.column(column)
        if str(values.type) == "bool":
            values = pc.cast(values, "int64")
        bounds = pc.min_max(values).as_py()
        lows.append(bounds["min"])
        highs.append(bounds["max"])
    return min(lows), max(highs)


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def match_classnames(source: HubSource, names: list[str] | None, label_range: tuple[int, int]) -> list[str]:
    """The suite's class names in the copy's label order, or a UserError naming the mismatch."""
    task, low, high = source.task, label_range[0], label_range[1]
    expected = source.classnames
    count = len(expected) if expected is not None else (len(names) if names else 0)
    if names is None and expected is None:
        raise UserError(f"{task}: the {source.repo} copy's label column '{source.label}' has no class names, and the suite takes {task}'s names from the data; use the copy with a ClassLabel column")
    if low < 0 or high >= count:
        raise UserError(f"{task}: the {source.repo} copy's labels run {low}..{high}, but {task} has {count} classes (0..{count - 1}); the copy is not the one the suite expects")
    index_only = all(_key(name).lstrip("0") == str(i) or (i == 0 and _key(name).strip("0") == "") for i, name in enumerate(names or []))
    if names is None:
        assert expected is not None  # refused above when both are None
        return list(expected)
    if expected is None:
        if index_only:
            raise UserError(f"{task}: the {source.repo} copy's label names are only indices, and the suite takes {task}'s class names from the data; use a copy whose ClassLabel names the classes")
        return [source.readable(name) for name in names]
    if len(names) != len(expected):
        raise UserError(f"{task}: the {source.repo} copy names {len(names)} classes, the suite's {task} has {len(expected)}; the copy is not the one the suite expects")
    if index_only:
        return list(expected)  # names that are only their index: the suite's order
    ours = {_key(name): name for name in expected}
    ours.update({_key(raw): name for raw, name in source.aliases.items()})
    mapped = [ours.get(_key(name)) for name in names]
    unknown = [name for name, ours_name in zip(names, mapped) if ours_name is None]
    if unknown or len(set(mapped)) != len(expected):
        shown = ", ".join(repr(n) for n in unknown[:3]) or "a repeated class"
        raise UserError(
            f"{task}: the {source.repo} copy's label names do not match the suite's class list ({shown}); "
            f"its heads and templates would score the wrong classes, so it is refused"
        )
    return [name for name in mapped if name is not None]


class HubSplit(Dataset):
    """One split of a hub copy as (RGB PIL image or transformed, int label); picklable for workers."""

    def __init__(self, data, image: str, label: str, transform: Callable | None = None):
        self.data = data.select_columns([image, label])
        self.image, self.label, self.transform = image, label, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        row = self.data[int(index)]
        image = row[self.image].convert("RGB")
        return (image if self.transform is None else self.transform(image)), int(row[self.label])

    def labels(self) -> list[int]:
        return [int(v) for v in self.data.data.column(self.label).to_pylist()]

    def content_hashes(self) -> list[str]:
        """A digest of each example's encoded image bytes (no decoding), in row order."""
        import hashlib

        hashes = []
        for batch in self.data.data.column(self.image).chunks:
            for raw in batch.field("bytes").to_pylist():
                hashes.append(hashlib.blake2b(raw or b"", digest_size=16).hexdigest())
        return hashes

    def example_keys(self) -> tuple[list[str], list[int]]:
        return self.content_hashes(), self.labels()
