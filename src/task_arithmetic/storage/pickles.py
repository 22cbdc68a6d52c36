"""PyTorch pickles (.pt/.pth/.bin) read as tensors only, and failures described as what they are.

torch.load(weights_only=True) never runs code, but it fails the same way (UnpicklingError) for a
file that refers to code (a pickled module or class) and for random bytes, and with mmap it
refuses every file that is not a zip archive. The user needs to know which: re-save a pickle of
code where its code is available, or replace a damaged file.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError

_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
RESAVE = "re-save it as `torch.save(model.state_dict(), file)` where the code that pickled it is available"


def describe_unreadable(path: Path, err: BaseException) -> str:
    """Why `path` could not be read as tensors, and what to do about it (one line)."""
    match = _GLOBAL.search(str(err))
    if match:
        return f"{path} is a pickle that refers to Python code ({match.group(1)}); pickled whole modules are refused, like any pickled code, because loading them could run it: {RESAVE}"
    return f"{path} is damaged or not a readable weights file ({type(err).__name__}: {_first_line(err)}); replace it with an intact copy"


def load_tensor_pickle(path: Path, mmap: bool = False) -> Any:
    """torch.load that only accepts tensors and plain containers; a UserError saying why otherwise."""
    path = Path(path)
    # mmap needs torch's zip format; an old-format (or damaged) file is read the plain way so that
    # the error, if any, is about its content rather than about mmap.
    use_mmap = mmap and zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except Exception as err:  # torch raises many types (UnpicklingError, RuntimeError, EOFError, KeyError...)
        raise UserError(describe_unreadable(path, err)) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    # torch's weights-only message starts with a paragraph of advice; its last part names the problem.
    detail = text.split("WeightsUnpickler error:")[-1].strip() if "WeightsUnpickler error:" in text else text
    line = detail.splitlines()[0].strip() if detail else ""
    return (line[:160] + "...") if len(line) > 160 else (line or "no detail")
