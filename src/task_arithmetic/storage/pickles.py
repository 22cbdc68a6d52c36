"""PyTorch pickles (.pt/.pth/.bin) read as tensors only, and failures described as what they are.

torch.load(weights_only=True) never runs code, but it fails the same way (UnpicklingError) for a
file that refers to code (a pickled module, class or function), for a plain Python pickle
(`pickle.dump`, which torch's safe reader cannot follow) and for random bytes, and with mmap it
refuses every file that is not a zip archive. Its message also advises re-loading with
`weights_only=False`, which would run whatever code the file holds, so that advice is never
passed on. The user needs to know which case it is: re-save a pickle where its code is available,
or replace a damaged file. Telling them apart reads the pickle's opcodes without executing them.
"""

from __future__ import annotations

import contextlib
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import UserError

# torch names the refused global as "Unsupported global: GLOBAL posix.system" (2.4-2.6) or
# "Trying to load unsupported GLOBAL posix.system whose module posix is blocked" (later).
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
RESAVE = "re-save it as `torch.save(model.state_dict(), file)` where the code that pickled it is available"
# Modules whose names a pickle of plain tensors refers to (torch's rebuild functions, OrderedDict).
_TENSOR_MODULES = ("torch", "collections")
TORCH_PROTOCOL = 2  # torch.save's pickle protocol; a higher one means Python's own pickle wrote it
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def holds_code_message(path: Path | str, reference: str) -> str:
    return (f"{path} holds code: it is a pickle that refers to Python code ({reference}); pickled whole modules are refused unread, "
            f"like any pickled code, because loading the file could run that code: {RESAVE}")


def describe_unreadable(path: Path | str, err: BaseException) -> str:
    """Why `path` could not be read as tensors, and what to do about it (one line)."""
    match = _GLOBAL.search(str(err))
    if match:
        return holds_code_message(path, match.group(1))
    scanned = scan_pickle(Path(path))
    if scanned is not None:
        protocol, references = scanned
        code = [r for r in references if r.split(".")[0] not in _TENSOR_MODULES]
        if code:
            return holds_code_message(path, code[0])
        if protocol > TORCH_PROTOCOL and not zipfile.is_zipfile(path):
            return (f"{path} is a plain Python pickle (protocol {protocol}), not a torch.save file, and is read as tensors only in "
                    "torch.save's format: load it with pickle where you trust it and re-save it with `torch.save(state_dict, file)`")
    return f"{path} is damaged or not a readable weights file ({type(err).__name__}: {_detail(err)}); replace it with an intact copy"


def scan_pickle(path: Path) -> tuple[int, list[str]] | None:
    """(protocol, the module.name references) of the pickle in `path` (torch's zip format: its
    data.pkl), read opcode by opcode without executing anything; None when it is not a pickle."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not names:
                    return None
                with archive.open(names[0]) as handle:
                    return _scan(handle)
        with open(path, "rb") as handle:
            return _scan(handle)
    except Exception:  # pickletools raises ValueError on bytes that are not opcodes; zip and OS errors alike
        return None


def _scan(handle: IO[bytes]) -> tuple[int, list[str]]:
    # STACK_GLOBAL takes module and name from the stack: the last two strings pushed, directly or
    # fetched back from the memo (a pickler memoizes each string and fetches repeats from there).
    protocol, references, strings = 0, [], []
    memo: dict[int, str | None] = {}
    arg: Any  # typeshed says Any | None; the opcodes read as int below always carry an int
    top: str | None = None  # the string the previous opcode pushed, if any
    for opcode, arg, _ in pickletools.genops(handle):
        name = opcode.name
        if name in _STRING_OPS:
            top = str(arg)
            strings.append(top)
            continue
        if name == "MEMOIZE":
            memo[len(memo)] = top
            continue
        if name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = top
            continue
        if name in ("FRAME", "PROTO"):
            protocol = int(arg) if name == "PROTO" else protocol
            continue
        top = None
        if name in ("BINGET", "LONG_BINGET", "GET"):
            top = memo.get(int(arg))
            if top is not None:
                strings.append(top)
        elif name in ("GLOBAL", "INST"):
            references.append(str(arg).replace(" ", "."))
        elif name == "STACK_GLOBAL" and len(strings) >= 2:
            references.append(f"{strings[-2]}.{strings[-1]}")
    return protocol, references


@contextlib.contextmanager
def quiet_pickle_warnings() -> Iterator[None]:
    """Hide torch's note on a pickle protocol it does not expect: the file is described in one line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pickle protocol.*")
        yield


def load_tensor_pickle(path: Path, mmap: bool = False) -> Any:
    """torch.load that only accepts tensors and plain containers; a UserError saying why otherwise."""
    path = Path(path)
    # mmap needs torch's zip format; an old-format (or damaged) file is read the plain way so that
    # the error, if any, is about its content rather than about mmap.
    use_mmap = mmap and zipfile.is_zipfile(path)
    try:
        with quiet_pickle_warnings():
            return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except Exception as err:  # torch raises many types (UnpicklingError, RuntimeError, EOFError, KeyError...)
        raise UserError(describe_unreadable(path, err)) from err


def _detail(err: BaseException) -> str:
    """The line of an error that names the problem, without torch's advice around it."""
    text = str(err).strip()
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:")[-1]
    advice = ("weights_only", "Weights only load failed", "Please file an issue", "Check the documentation", "pytorch.org")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not any(a in line for a in advice)]
    line = lines[0] if lines else ""
    return (line[:160] + "...") if len(line) > 160 else (line or "no detail")
