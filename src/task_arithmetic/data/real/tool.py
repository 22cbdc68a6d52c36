"""The dataset tool behind `src/prepare_datasets.py`: fetch hub copies, make the hand-made splits,
report readiness, split fingerprints and train/test leaks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ...errors import UserError
from . import CONTROL, DATASETS, SUITES
from .common import TOOL, RealDataset

PARTS = ("train", "test", "classnames")
NAME_WIDTH = max(len(name) for name in DATASETS)  # the report's first column


def _select(names: Sequence[str] | None, candidates: dict[str, RealDataset]) -> list[RealDataset]:
    if not names:
        return list(candidates.values())
    # A suite's name stands for those of its tasks (and its control) that the command applies to:
    # `check --tasks real20`, `split --tasks real14` (only DTD, EuroSAT, SUN397, RESISC45 need one).
    expanded: list[str] = []
    for name in names:
        members = SUITES[name] + (CONTROL,) if name in SUITES else ()
        expanded += [task for task in members if task in candidates] if members else [name]
    names = list(dict.fromkeys(expanded))
    unknown = [name for name in names if name not in candidates]
    if unknown:
        raise UserError(f"unknown task(s) {', '.join(unknown)} for this command; valid: {', '.join(candidates)}")
    return [candidates[name] for name in names]


def _existing_folder(data_location: Path) -> Path:
    if not data_location.is_dir():
        raise UserError(f"--data-location {data_location} is not a folder; pass the folder that holds (or will hold) the datasets")
    return data_location


def missing_for(dataset: RealDataset, data_location: Path) -> list[str]:
    seen: list[str] = []
    for part in PARTS:
        seen += [path for path in dataset.missing(data_location, part) if path not in seen]
    return seen


def split(data_location: Path, tasks: Sequence[str] | None = None) -> list[str]:
    """Make the absent split folders/lists; returns one line per thing made (or per task left as is).
    Rerunning changes nothing.

    Tasks named explicitly must have their raw download; with no names, tasks without one are
    reported and skipped.
    """
    root = _existing_folder(Path(data_location))
    handmade = {name: ds for name, ds in DATASETS.items() if ds.splitter is not None}
    lines = []
    for dataset in _select(tasks, handmade):
        assert dataset.splitter is not None  # `handmade` holds only datasets with one
        if not missing_for(dataset, root):
            lines.append(f"{dataset.name}: ready, nothing to do")
            continue
        raw_missing = dataset.splitter.raw_missing(root)
        if raw_missing:
            message = f"{dataset.name}: no raw download under {root} (missing {', '.join(raw_missing)}); the split is made from {dataset.splitter.raw_layout}"
            if tasks:
                raise UserError(message)
            lines.append(f"{message}; skipped")
            continue
        lines += dataset.splitter.make(root) or [f"{dataset.name}: ready, nothing to do"]
    return lines


@dataclass(frozen=True)
class Readiness:
    name: str
    missing: list[str]
    hint: str  # what to do about it; empty when ready
    problems: list[str] = field(default_factory=list)  # found by loading (check --counts)
    counts: str = ""  # "<n> train / <m> test images, <k> classes" when loaded
    source: str = ""  # the hub copy read, when the local layout is absent
    notes: list[str] = field(default_factory=list)  # fingerprints, leaks: one line each
    status: str = "incomplete"  # the word before the problems

    @property
    def ready(self) -> bool:
        return not self.missing and not self.problems

    def line(self) -> str:
        if self.ready:
            details = "; ".join(d for d in (self.source, self.counts) if d)
            return f"{self.name:<{NAME_WIDTH}} ready" + (f" ({details})" if details else "") + "".join(f"\n{'':<{NAME_WIDTH}} {n}" for n in self.notes)
        if self.missing:
            return f"{self.name:<{NAME_WIDTH}} missing {', '.join(self.missing)}\n{'':<{NAME_WIDTH}} {self.hint}"
        where = f" ({self.source})" if self.source else ""
        return f"{self.name:<{NAME_WIDTH}} {self.status}{where}: {'; '.join(self.problems)}\n{'':<{NAME_WIDTH}} {self.hint}"


def check(data_location: Path, tasks: Sequence[str] | None = None, counts: bool = False, fingerprints: bool = False, leaks: bool = False) -> list[Readiness]:
    """Which tasks have every file they need (a local layout or a hub copy); with counts, also load
    them and count images and classes; with fingerprints, each part's split fingerprint; with leaks,
    the test images identical to train images (content hash)."""
    root = _existing_folder(Path(data_location))
    report = []
    for dataset in _select(tasks, DATASETS):
        missing = missing_for(dataset, root)
        copy = dataset.hub_copy(root) if missing else None
        source = copy.describe() if copy is not None else ""
        missing = [] if copy is not None else missing
        hint = ""
        if missing:
            hint = f"expected layout: {dataset.layout}"
            if dataset.hub is not None:
                hint += f"; or fetch its hub copy ({dataset.hub.repo}): `{TOOL} download --tasks {dataset.name} --data-location {root}`"
            if dataset.splitter is not None:
                raw_missing = dataset.splitter.raw_missing(root)
                if raw_missing:
                    hint = f"get the raw download ({dataset.splitter.raw_layout}), then run `{TOOL} split --data-location {root}`"
                else:
                    hint = f"raw download found: run `{TOOL} split --data-location {root} --tasks {dataset.name}`"
            report.append(Readiness(dataset.name, missing, hint))
            continue
        entry = _counted(dataset, root) if counts else Readiness(dataset.name, [], "")
        entry = dataclasses.replace(entry, source=source)
        if entry.problems and copy is not None:
            entry = dataclasses.replace(entry, hint=f"the copy differs from {copy.source.repo}: delete {copy.folder} and download it again")
        if entry.ready and (fingerprints or leaks):
            entry = _examined(entry, root, fingerprints, leaks)
        report.append(entry)
    return report


def _examined(entry: Readiness, root: Path, fingerprints: bool, leaks: bool) -> Readiness:
    from ..fingerprints import find_leaks, short, task_fingerprints

    notes = list(entry.notes)
    try:
        if fingerprints:
            notes.append(f"fingerprints: {short(task_fingerprints(entry.name, root))}")
        if leaks:
            found = find_leaks(entry.name, root)
            if found:
                shown = ", ".join(f"test #{leak.test_index} = train #{leak.train_index} (labels {leak.test_label}/{leak.train_label})" for leak in found[:5])
                more = f", and {len(found) - 5} more" if len(found) > 5 else ""
                return dataclasses.replace(entry, notes=notes, status="leaks", hint="these test images are also in the train split: the test accuracy counts them",
                                           problems=[f"{len(found)} test image(s) identical to train images: {shown}{more}"])
            notes.append("leaks: no test image is identical to a train image")
    except UserError as err:
        return dataclasses.replace(entry, notes=notes, hint=f"compare the copy with the expected layout: {DATASETS[entry.name].layout}", problems=[str(err)])
    return dataclasses.replace(entry, notes=notes)


def download(data_location: Path, tasks: Sequence[str] | None, dry_run: bool = False, progress: bool = True, snapshot=None) -> bool:
    """Fetch the hub copies of the tasks (all with one, by default) that are not ready yet."""
    from .download import download as fetch

    selected = _select(tasks, DATASETS)
    return fetch(Path(data_location), selected, snapshot=snapshot, progress=progress, dry_run=dry_run)


def _counted(dataset: RealDataset, root: Path) -> Readiness:
    """Load the task's splits (images stay unread) and compare its classes with the full dataset's."""
    hint = f"compare the copy with the expected layout: {dataset.layout}"
    try:
        classes = len(dataset.load_classnames(root))
        sizes = {split: len(dataset.load_split(root, split)) for split in ("train", "test")}  # type: ignore[arg-type]
    except UserError as err:
        return Readiness(dataset.name, [], hint, problems=[str(err)])
    problems = [f"the {split} split has no images" for split, size in sizes.items() if size == 0]
    if classes != dataset.num_classes:
        problems.append(f"{classes} classes found, the full {dataset.name} has {dataset.num_classes}")
    summary = f"{sizes['train']} train / {sizes['test']} test images, {classes} classes"
    return Readiness(dataset.name, [], hint if problems else "", problems, summary)
