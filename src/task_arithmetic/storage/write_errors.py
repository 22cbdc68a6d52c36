"""Turn a failed write (full disk, quota, read-only or forbidden folder) into one clear line.

Every write in the suite goes through io.py, which wraps it in `translating_write_errors`; the
previous version of the file is never touched before the new one is complete, so the message
can promise that it is kept.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
from pathlib import Path
from typing import Iterator

from safetensors import SafetensorError

from ..errors import UserError

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_FULL = {errno.ENOSPC, errno.EDQUOT}


class WriteFailed(UserError):
    """A file could not be written; the message names the folder, the reason and the space needed."""


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _size(nbytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024  # type: ignore[assignment]
    return f"{nbytes} B"


def _errno_of(err: BaseException) -> int | None:
    if isinstance(err, OSError):
        return err.errno
    # safetensors reports the OS error inside its own message: "... Os { code: 28, kind: StorageFull ..."
    match = re.search(r"code:\s*(\d+)", str(err))
    return int(match.group(1)) if match else None


def write_failure_message(path: Path, needed: int | None, err: BaseException) -> str | None:
    """The one-line explanation of `err`, or None when it is not a write failure we can explain."""
    code = _errno_of(err)
    if code not in _REASONS:
        return None
    path = Path(path)
    folder = path.parent
    need = f"about {_size(needed)}" if needed is not None else "room for the file"
    if code in _FULL:
        free = _free_bytes(folder)
        free_text = f", {_size(free)} free now" if free is not None else ""
        fix = f"free at least {_size(needed) if needed is not None else 'that much'} there or point the output root at another disk"
        detail = f"{_REASONS[code]} in {folder} (needs {need}{free_text}); {fix}"
    else:
        detail = f"{_REASONS[code]} in {folder} (it needs {need}); make the folder writable or point the output root elsewhere"
    return f"cannot write {path.name}: {detail}; any previous version of the file is kept"


@contextlib.contextmanager
def translating_write_errors(path: Path, needed: int | None = None) -> Iterator[None]:
    """Re-raise OSError / SafetensorError of a write as WriteFailed with one clear line."""
    try:
        yield
    except (OSError, SafetensorError) as err:
        message = write_failure_message(Path(path), needed, err)
        if message is None:
            raise
        raise WriteFailed(message) from err
