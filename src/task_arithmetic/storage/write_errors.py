"""Turn a failed write (full disk, quota, read-only or forbidden folder) into one clear line.

Every write in the suite goes through io.py, which wraps it in `translating_write_errors`; the
previous version of the file is never touched before the new one is complete, so the message
can promise that it is kept. An output path that is a folder, or lies under a file, is refused
the same way (`check_output_path`, also called before any long work).
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator

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


# What a library that hides the OSError (safetensors, transformers) leaves in its message.
_MESSAGES = {
    "no space left on device": errno.ENOSPC, "storagefull": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT,
    "read-only file system": errno.EROFS, "readonlyfilesystem": errno.EROFS, "permission denied": errno.EACCES,
}


def _errno_of(err: BaseException) -> int | None:
    if isinstance(err, OSError) and err.errno is not None:
        return err.errno
    # safetensors reports the OS error inside its own message, depending on its version
    # "I/O error: No space left on device (os error 28)" or "... Os { code: 28, kind: StorageFull ...".
    text = str(err)
    match = re.search(r"os error (\d+)|code:\s*(\d+)", text)
    if match:
        return int(match.group(1) or match.group(2))
    lowered = text.lower()
    return next((code for phrase, code in _MESSAGES.items() if phrase in lowered), None)


def _blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of `path` that is a file (nothing can be created under it)."""
    for parent in reversed(Path(path).parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def output_path_problem(path: Path, kind: str = "file") -> str | None:
    """Why `path` cannot be written as a `kind` ("file" or "folder"): it is the other kind, or lies under a file."""
    path = Path(path)
    blocker = _blocking_file(path)
    if blocker is not None:
        return f"{blocker} is a file, so nothing can be written under it"
    if kind == "file" and path.is_dir():
        return f"{path} is a folder, not a file"
    if kind == "folder" and path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    return None


def check_output_path(path: Path, kind: str = "file", what: str = "output") -> None:
    """Refuse, in one line and before any work, an output path that cannot be written."""
    problem = output_path_problem(path, kind)
    if problem is not None:
        raise WriteFailed(f"cannot write the {what} {path}: {problem}; choose another path")


def write_failure_message(path: Path, needed: int | None, err: BaseException) -> str | None:
    """The one-line explanation of `err`, or None when it is not a write failure we can explain."""
    path = Path(path)
    code = _errno_of(err)
    if code in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        problem = output_path_problem(path, "file")  # a file under a file, or a folder in a file's place
        return f"cannot write {path}: {problem}; choose another path" if problem else None
    if code not in _REASONS:
        return None
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


def _safetensors_errors() -> tuple[type[Exception], ...]:
    """safetensors' error type, if it is loaded: a write that never imported it cannot raise it
    (importing it here would make every script's --help wait for it)."""
    module = sys.modules.get("safetensors")
    error = getattr(module, "SafetensorError", None)
    return (error,) if isinstance(error, type) else ()


@contextlib.contextmanager
def translating_write_errors(path: Path, needed: int | None = None) -> Iterator[None]:
    """Re-raise OSError / SafetensorError of a write as WriteFailed with one clear line. Nested, the
    outermost names the failure: a file written inside a folder being built whole (io.atomic_folder)
    is reported as that folder."""
    try:
        yield
    except WriteFailed as failed:
        cause = failed.__cause__
        message = write_failure_message(Path(path), needed, cause) if cause is not None and isinstance(cause, (OSError, *_safetensors_errors())) else None
        if message is None:
            raise
        raise WriteFailed(message) from cause
    except Exception as err:
        if not isinstance(err, (OSError, *_safetensors_errors())):
            raise
        message = write_failure_message(Path(path), needed, err)
        if message is None:
            raise
        raise WriteFailed(message) from err
