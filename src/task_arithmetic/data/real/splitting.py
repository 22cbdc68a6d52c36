"""Building blocks of the hand-made splits: a hash order that is the same on every machine,
proportional cuts, and folder/list writes that appear all at once or not at all, never outside
their folder.

Assignment depends only on file names (never on directory listing order or an RNG stream), so two
users with the same raw download get the same split.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from pathlib import Path
from typing import Iterable, Sequence

from ...errors import UserError
from ...io import atomic_write_text
from ...storage.write_errors import translating_write_errors

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")


def hashed_order(names: Iterable[str], salt: str) -> list[str]:
    return sorted(names, key=lambda name: hashlib.sha256(f"{salt}:{name}".encode()).digest())


def cut(items: Sequence[str], fractions: Sequence[float]) -> list[list[str]]:
    """Consecutive parts with sizes from cumulative fractions (rounded half up); they cover `items`."""
    bounds, total = [0], 0.0
    for fraction in fractions[:-1]:
        total += fraction
        bounds.append(math.floor(total * len(items) + 0.5))
    bounds.append(len(items))
    return [list(items[a:b]) for a, b in zip(bounds, bounds[1:])]


def image_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def link_or_copy(src: Path, dst: Path) -> None:
    # A hard link costs no space; across file systems fall back to a copy.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _leaves(relative: str) -> bool:
    parts = Path(relative).parts
    return not relative or Path(relative).is_absolute() or ".." in parts


def build_folder(dest: Path, files: Sequence[tuple[Path, str]], sources_in: Path | None = None, listed_in: Path | None = None) -> None:
    """Create `dest` holding each source file at its relative path, atomically (one rename).

    A crash leaves only `.<name>.partial` beside it, which the next run deletes and rebuilds.
    Every relative path must stay inside `dest` and, given `sources_in`, every source inside that
    folder: a hand-edited or foreign list (`listed_in`) cannot read or write elsewhere. A write that
    fails (full disk, read-only folder) is one line, leaving nothing behind.
    """
    where = f" named in {listed_in}" if listed_in is not None else ""
    # lexically (os.path.normpath), so a dataset kept behind symlinks stays readable
    inside = Path(os.path.normpath(sources_in)) if sources_in is not None else None
    for src, relative in files:
        if _leaves(relative) or (inside is not None and not Path(os.path.normpath(src)).is_relative_to(inside)):
            raise UserError(f"the file {relative!r}{where} is not a path inside {sources_in or dest}; use the list of the original download (re-extract it)")
    partial = dest.parent / f".{dest.name}.partial"
    with translating_write_errors(dest):
        if partial.exists():
            shutil.rmtree(partial)
        try:
            partial.mkdir(parents=True)
            for src, relative in files:
                target = partial / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(src, target)
            os.rename(partial, dest)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise


def write_lines(path: Path, lines: Iterable[str]) -> None:
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
