"""Content digests stored beside cached and derived files, checked when they are read back.

A flipped byte in a cached head or tangent cache would otherwise change published numbers
without any error, and a truncated file would look like a foreign one.
"""

from __future__ import annotations

import hashlib
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


def verify_digest(path: Path, expected: str | None) -> None:
    """Raise DamagedFile when `path`'s content does not match `expected` (None: nothing recorded)."""
    if expected is None:
        return
    actual = file_digest(path)
    if actual != expected:
        raise DamagedFile(path, f"its content digest {actual[:12]} does not match the recorded {expected[:12]}; it was changed or truncated after it was written")
