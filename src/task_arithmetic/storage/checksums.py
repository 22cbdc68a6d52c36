"""Content digests stored beside cached and derived files, checked when they are read back.

A flipped byte in a cached head or tangent cache would otherwise change published numbers
without any error, and a truncated file would look like a foreign one.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from ..errors import UserError

DIGEST_KEY = "sha256"
_BLOCK = 1 << 24


class DamagedFile(UserError):
    """A file written by this suite no longer matches its recorded digest (or cannot be parsed)."""

    def __init__(self, path: Path, detail: str, message: str | None = None):
        self.path = Path(path)
        self.detail = detail
        super().__init__(message or f"{path} is damaged ({detail})")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(path: Path) -> tuple[str, int, int, int, int, int]:
    """What changes whenever the file does: a rename gives a new inode, a write new times."""
    stat = os.stat(path)
    return (str(Path(path).resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@functools.lru_cache(maxsize=256)
def _digest_of(identity: tuple[str, int, int, int, int, int]) -> str:
    return file_digest(Path(identity[0]))


def cached_file_digest(path: Path) -> str:
    """file_digest, hashed once per process while the file is unchanged (sha256 costs ~1 s/GB,
    and theta_0, heads and checkpoints are read many times by one evaluation or merge)."""
    before = _identity(path)
    digest = _digest_of(before)
    if _identity(path) != before:  # changed while it was hashed: forget, hash what is there now
        _digest_of.cache_clear()
        return file_digest(path)
    return digest


def verify_digest(path: Path, expected: str | None) -> None:
    """Raise DamagedFile when `path`'s content does not match `expected` (None: nothing recorded)."""
    if expected is None:
        return
    actual = cached_file_digest(path)
    if actual != expected:
        raise DamagedFile(path, f"its content digest {actual[:12]} does not match the recorded {expected[:12]}; it was changed or truncated after it was written")
