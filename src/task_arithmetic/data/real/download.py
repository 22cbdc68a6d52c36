"""`prepare_datasets.py download`: fetch each task's hub copy into <data-location>/hf/<owner>/<name>/.

Per task: the repository's files for our two splits (and its README, and a webdataset copy's
names file) go to a staging folder, hf/.partial/<owner>/<name>/, through huggingface_hub's
snapshot_download, which resumes a partial download there. Only a complete download is renamed
into place and then read once (the Arrow preparation, the column and class-name checks); a copy
that fails those checks goes back to staging, named in the failure line. So the loaders never see
a half-written copy, a failed or interrupted task is resumed by running the same command again,
and tasks already there (locally, as a hub copy, or in the Hugging Face cache) are skipped.

The network call is one seam, `snapshot` (huggingface_hub.snapshot_download by default), which
the tests replace.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ...errors import UserError
from .common import RealDataset
from .hub import HUB_FOLDER, HubCopy, copy_folder, find_copy, is_complete, require_datasets
from .hub_sources import GATED

Snapshot = Callable[..., object]  # snapshot_download(repo_id=, repo_type=, local_dir=, allow_patterns=)
STAGING = ".partial"


@dataclass(frozen=True)
class Planned:
    dataset: RealDataset
    action: str  # "ready", "fetch" or "skip"
    detail: str

    def line(self) -> str:
        return f"{self.dataset.name}: {self.detail}"


def staging_folder(dataset: RealDataset, root: Path) -> Path:
    owner, name = dataset.hub.owner_name  # type: ignore[union-attr]
    return Path(root) / HUB_FOLDER / STAGING / owner / name


def plan(root: Path, datasets: Sequence[RealDataset]) -> list[Planned]:
    planned = []
    for dataset in datasets:
        if dataset.name in GATED:
            planned.append(Planned(dataset, "skip", GATED[dataset.name]))
        elif dataset.hub is None:
            planned.append(Planned(dataset, "skip", "no hub copy is known; use its local layout"))
        elif dataset.local_complete(root):
            planned.append(Planned(dataset, "ready", "ready (local layout), nothing to download"))
        elif (copy := find_copy(dataset.hub, root)) is not None:
            planned.append(Planned(dataset, "ready", f"ready ({copy.describe()}), nothing to download"))
        else:
            partial = " (resuming the partial download)" if staging_folder(dataset, root).is_dir() else ""
            size = f", about {dataset.hub.size_gb:g} GB" if dataset.hub.size_gb else ""
            planned.append(Planned(dataset, "fetch", f"fetch {dataset.hub.repo}{size} -> {copy_folder(dataset.hub, root)}{partial}"))
    return planned


def _check_space(root: Path, planned: list[Planned]) -> None:
    needed = sum((p.dataset.hub.size_gb or 0.0 for p in planned if p.action == "fetch"), 0.0)  # type: ignore[union-attr]
    free = shutil.disk_usage(root).free / 1e9
    if needed and free < needed * 1.05:
        raise UserError(f"--data-location {root} has {free:.1f} GB free; the copies to fetch need about {needed:.1f} GB (those whose size is known); free space or pick another folder")


def _default_snapshot() -> Snapshot:
    from huggingface_hub import snapshot_download

    return snapshot_download


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _fetch_one(dataset: RealDataset, root: Path, snapshot: Snapshot) -> str:
    """Download, move into place, read once. Returns the success line or raises _Failed."""
    source = dataset.hub
    assert source is not None
    staging, final = staging_folder(dataset, root), copy_folder(source, root)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        snapshot(repo_id=source.repo, repo_type="dataset", local_dir=str(staging), allow_patterns=source.download_patterns())
    except Exception as err:  # noqa: BLE001 - every failure becomes one line; the partial files stay
        if not any(staging.iterdir()):
            _remove_empty(staging, Path(root) / HUB_FOLDER)
            raise _Failed(f"download of {source.repo} failed ({_first_line(err)}); nothing was written: run the same command again") from None
        raise _Failed(f"download of {source.repo} failed ({_first_line(err)}); the partial download stays in {staging}: run the same command again to resume") from None
    if not is_complete(source, staging):
        wanted = ", ".join(p for split in ("train", "test") for p in source.patterns(split))
        raise _Failed(f"{source.repo} gave no files matching {wanted}; its layout may have changed (files kept in {staging})")
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping: not part of the copy
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        shutil.rmtree(final)  # an incomplete copy left by hand (a complete one was skipped by plan)
    os.rename(staging, final)
    try:
        copy = HubCopy(source, final, "data-location")
        classes = copy.classnames()  # reads the copy once: Arrow preparation, columns, label names
        sizes = {split: len(copy.load()[split]) for split in ("train", "test")}
    except Exception as err:  # noqa: BLE001
        os.rename(final, staging)
        raise _Failed(f"the downloaded {source.repo} copy was refused: {_first_line(err)} (files kept in {staging})") from None
    return f"{dataset.name}: fetched {source.repo} -> {final} ({sizes['train']} train / {sizes['test']} test images, {len(classes)} classes)"


class _Failed(Exception):
    pass


def _remove_empty(folder: Path, stop: Path) -> None:
    """Remove `folder` and its empty parents up to and including `stop`."""
    while folder != stop.parent and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def download(root: Path, datasets: Sequence[RealDataset], snapshot: Snapshot | None = None, progress: bool = True,
             dry_run: bool = False, echo: Callable[[str], None] = print) -> bool:
    """Fetch what is missing, one line per task through `echo`; True when every task is fetched or ready."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UserError(f"--data-location {root} is not a folder; pass the folder that holds (or will hold) the datasets")
    planned = plan(root, datasets)
    fetch = [p for p in planned if p.action == "fetch"]
    for item in planned if dry_run else [p for p in planned if p.action != "fetch"]:
        echo(item.line())
    if dry_run or not fetch:
        return True
    require_datasets()  # cheap checks first: the reader, the network switch, the folder, the space
    if snapshot is None and os.environ.get("TA_ALLOW_DOWNLOAD") != "1":  # the suite's one switch for downloads (task_arithmetic/__init__.py)
        raise UserError("downloads are off; re-run with TA_ALLOW_DOWNLOAD=1 on a machine with internet access")
    if snapshot is None and _hub_offline():
        raise UserError("the Hugging Face hub is switched off in this environment (HF_HUB_OFFLINE=1); unset it to download, or copy the files in by hand")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --data-location {root}: {err.strerror}; pass a writable folder") from None
    if not os.access(root, os.W_OK):
        raise UserError(f"--data-location {root} is not writable; pass a writable folder")
    _check_space(root, planned)
    snapshot = snapshot or _default_snapshot()
    ok = True
    with _quiet_libraries(), _bar(len(fetch), progress, echo) as bar:
        for item in fetch:
            bar.set_description(item.dataset.name)
            try:
                line = _fetch_one(item.dataset, root, snapshot)
            except _Failed as failure:
                line, ok = f"{item.dataset.name}: {failure}", False
            bar.write(line)
            bar.update(1)
    return ok


class _bar:
    """One progress bar over the tasks to fetch (tqdm on stderr), or a silent stand-in."""

    def __init__(self, total: int, enabled: bool, echo: Callable[[str], None]):
        self.total, self.enabled, self.echo, self.tqdm = total, enabled, echo, None

    def __enter__(self):
        if self.enabled:
            from tqdm import tqdm

            self.tqdm = tqdm(total=self.total, unit="task")
        return self

    def __exit__(self, *exc) -> None:
        if self.tqdm is not None:
            self.tqdm.close()

    def set_description(self, text: str) -> None:
        if self.tqdm is not None:
            self.tqdm.set_description(text)

    def write(self, line: str) -> None:
        if self.tqdm is not None:
            self.tqdm.write(line)  # above the bar, on stdout
        else:
            self.echo(line)

    def update(self, n: int) -> None:
        if self.tqdm is not None:
            self.tqdm.update(n)


class _quiet_libraries:
    """The libraries' own per-file bars off while our one bar runs (restored afterwards)."""

    def __enter__(self):
        import datasets
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

        self.hub_was_off = are_progress_bars_disabled()
        self.datasets_was_on = datasets.is_progress_bar_enabled()
        disable_progress_bars()
        datasets.disable_progress_bars()
        return self

    def __exit__(self, *exc) -> None:
        import datasets
        from huggingface_hub.utils import enable_progress_bars

        if not self.hub_was_off:
            enable_progress_bars()
        if self.datasets_was_on:
            datasets.enable_progress_bars()
