"""Atomic file writes and the suite's one weight format: safetensors + a JSON of metadata.

A weights file `X.safetensors` always has its metadata beside it in `X.json`, including the
file's content digest, checked on every read. Loading never unpickles anything, so a checkpoint
cannot run code. Write failures (full disk, read-only folder, an output path that is a folder or
lies under a file) become one clear line and leave the previous version of the file in place and
no temporary behind. Folders written as a whole (an exported or merged HF model) are built beside
their target and renamed into place (`atomic_folder`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Mapping

from .errors import UserError
from .storage.checksums import DIGEST_KEY, DamagedFile, file_digest, verify_digest
from .storage.write_errors import check_output_path, translating_write_errors

if TYPE_CHECKING:  # torch and safetensors are imported where tensors are read or written: --help stays instant
    import torch

_TEMP_SUFFIX = ".tmp"


def _normal_permissions(path: str | Path, folder: bool = False) -> None:
    # mkstemp/mkdtemp (and safetensors) create 0600/0700; outputs should be as readable as any other file the user writes.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if folder else 0o666) & ~umask)


def _temp_beside(path: Path) -> str:
    """A temporary file in the target's folder (so the rename is atomic), with normal permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    os.close(fd)
    _normal_permissions(tmp)
    return tmp


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the half-written temporaries (files and folders) a killed writer left in `folder`
    (call only while owning it)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = list(folder.glob(f".*{_TEMP_SUFFIX}"))
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    with atomic_stream(path, len(data)) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_stream(path: Path, size: int) -> Iterator[BinaryIO]:
    """Write a file piece by piece (one too large to hold in memory, or all at once): it appears at
    `path`, complete, only when the block ends without an error (temporary in the same folder,
    fsync, rename). `size` (bytes) is what a full disk's message says was needed."""
    path = Path(path)
    with translating_write_errors(path, size):
        check_output_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(path)
        try:
            with open(tmp, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, _json_text(obj))


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise UserError(f"{path} does not exist") from err
    except IsADirectoryError as err:
        raise UserError(f"{path} is a folder, expected a JSON file") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" ({err.msg} at line {err.lineno})" if isinstance(err, json.JSONDecodeError) else ""
        raise UserError(f"{path} is not valid JSON{where}; delete it and re-run the step that writes it") from err


def read_json_object(path: Path) -> dict[str, Any]:
    """read_json for files that must hold a JSON object (metadata, states)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a JSON {type(data).__name__}, expected an object; delete it and re-run the step that writes it")
    return data


def save_file(tensors: Mapping[str, "torch.Tensor"], path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
    """safetensors' writer, imported on first use (every script imports this module before parsing)."""
    from safetensors.torch import save_file as write

    write(dict(tensors), str(path), metadata=dict(metadata) if metadata else None)


def load_file(path: str | Path, device: str = "cpu") -> dict[str, "torch.Tensor"]:
    """safetensors' reader, imported on first use."""
    from safetensors.torch import load_file as read

    return read(str(path), device=device)


def metadata_path(weights_path: Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_weights(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any],
                 companions: Mapping[Path, Path] | None = None) -> Path:
    """Save tensors to `path` (.safetensors) and metadata (with the file's digest) to the JSON beside it.

    The JSON is the mark of a complete file: an existing one is removed just before the new
    weights are renamed into place and the new one is renamed in right after, so a kill never
    leaves new weights described by old metadata. companions ({finished file: its final path},
    same file system) are renamed into place in that same window, so they belong to the
    weights the JSON marks complete (a run's log goes with its model).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights path must end in .safetensors, got {path}")
    contiguous = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    needed = sum(t.numel() * t.element_size() for t in contiguous.values())
    meta_file = metadata_path(path)
    with translating_write_errors(path, needed):
        check_output_path(path)
        check_output_path(meta_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(path)
        meta_tmp = None
        try:
            save_file(contiguous, tmp)
            _normal_permissions(tmp)  # safetensors writes a new file of its own
            full_meta = {**dict(metadata), DIGEST_KEY: file_digest(Path(tmp))}
            meta_tmp = _temp_beside(meta_file)
            with open(meta_tmp, "w") as handle:
                handle.write(_json_text(full_meta))
                handle.flush()
                os.fsync(handle.fileno())
            meta_file.unlink(missing_ok=True)
            os.replace(tmp, path)
            for source, target in (companions or {}).items():
                os.replace(source, target)
            os.replace(meta_tmp, meta_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            if meta_tmp is not None:
                Path(meta_tmp).unlink(missing_ok=True)
            raise
    return path


@contextlib.contextmanager
def tidy_new_folders(folder: Path) -> Iterator[None]:
    """The folders on the way to `folder` that did not exist before the block are removed again
    if the block leaves them empty: a command that fails leaves no empty run or results folder.
    Only empty folders it created are removed; anything holding a file stays."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        yield
    finally:
        current = folder
        while current != existing and existing in current.parents:
            try:
                current.rmdir()  # only an empty folder
            except OSError:
                break
            current = current.parent


@contextlib.contextmanager
def atomic_folder(target: Path, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; when the block completes it becomes `target`.

    An existing `target` (the caller decides whether it may be replaced) is renamed aside and
    deleted only once the new folder is in place; if the block fails, the temporary is removed
    and `target` is untouched. Write failures inside the block become one WriteFailed line.
    """
    target = Path(target)
    with translating_write_errors(target, needed):
        check_output_path(target, "folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=_TEMP_SUFFIX))
        try:
            _normal_permissions(tmp, folder=True)
            yield tmp
            if not target.exists():
                os.rename(tmp, target)
                return
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old.", suffix=_TEMP_SUFFIX))
            os.rmdir(old)  # only its unique name is wanted
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def save_plain_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], header: Mapping[str, str] | None = None) -> Path:
    """A .safetensors file for other tools (no JSON beside it; `header` goes into the file's own
    metadata), written atomically like every file of the suite."""
    path = Path(path)
    contiguous = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with translating_write_errors(path, sum(t.numel() * t.element_size() for t in contiguous.values())):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(path)
        try:
            save_file(contiguous, tmp, metadata=dict(header) if header else None)
            _normal_permissions(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def load_weights(path: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a weights file and its metadata, checking the recorded digest.

    DamagedFile when a file this suite wrote (it has metadata) is truncated or altered; a clear
    UserError when the file is missing or foreign.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, expected a .safetensors weights file")
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    meta_file = metadata_path(path)
    metadata = read_json_object(meta_file) if meta_file.is_file() else {}
    recorded = metadata.pop(DIGEST_KEY, None)  # the file's own digest, not part of what it describes
    verify_digest(path, recorded if isinstance(recorded, str) else None)
    from safetensors import SafetensorError

    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        if metadata:
            raise DamagedFile(path, f"it cannot be parsed: {err}") from err
        raise UserError(f"cannot read weights file {path} ({err}); it must be a .safetensors file written by this suite") from err
    return tensors, metadata


def load_cached_weights(path: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """load_weights for caches: None (after one line saying it is rebuilt) when the file is damaged."""
    try:
        return load_weights(path, device)
    except DamagedFile as err:
        announce_rebuild(err)
        return None


def announce_rebuild(err: DamagedFile) -> None:
    """The one line a transparently rebuilt cache gets."""
    print(f"{err.path} is damaged ({err.detail.split(';')[0]}); rebuilding it", file=sys.stderr)
