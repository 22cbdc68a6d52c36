"""The dataset tool behind `src/prepare_datasets.py`: make the hand-made splits, report readiness."""

from __future__ import annotations

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

    @property
    def ready(self) -> bool:
        return not self.missing and not self.problems

    def line(self) -> str:
        if self.ready:
            return f"{self.name:<{NAME_WIDTH}} ready" + (f" ({self.counts})" if self.counts else "")
        if self.missing:
            return f"{self.name:<{NAME_WIDTH}} missing {', '.join(self.missing)}\n{'':<{NAME_WIDTH}} {self.hint}"
        return f"{self.name:<{NAME_WIDTH}} incomplete: {'; '.join(self.problems)}\n{'':<{NAME_WIDTH}} {self.hint}"


def check(data_location: Path, tasks: Sequence[str] | None = None, counts: bool = False) -> list[Readiness]:
    """Which tasks have every file they need; with counts, also load them and count images and classes."""
    root = _existing_folder(Path(data_location))
    report = []
    for dataset in _select(tasks, DATASETS):
        missing = missing_for(dataset, root)
        hint = ""
        if missing:
            hint = f"expected layout: {dataset.layout}"
            if dataset.splitter is not None:
                raw_missing = dataset.splitter.raw_missing(root)
                if raw_missing:
                    hint = f"get the raw download ({dataset.splitter.raw_layout}), then run `{TOOL} split --data-location {root}`"
                else:
                    hint = f"raw download found: run `{TOOL} split --data-location {root} --tasks {dataset.name}`"
            report.append(Readiness(dataset.name, missing, hint))
        elif counts:
            report.append(_counted(dataset, root))
        else:
            report.append(Readiness(dataset.name, [], ""))
    return report


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
