"""What every script's --help shows besides its flags: each flag's default, the tasks and
benchmarks, the script's examples (its docstring) and its exit codes.

Standard library and the light registries only: `--help` answers before torch is imported.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any, Mapping, Sequence

from .stop_signals import EXIT_PREEMPTED

EXIT_CODES: dict[int, str] = {
    0: "done (or nothing left to do)",
    1: "a check found problems (the listed tasks are not ready)",
    2: "bad input or a refused output: one `error:` line naming the problem and the fix, nothing half-written",
    EXIT_PREEMPTED: "stopped by SIGTERM or SIGUSR1 (e.g. Slurm pre-emption): finished work is kept, re-run the same command to resume",
    130: "interrupted by Ctrl-C (SIGINT): finished work is kept",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description and epilog as written (examples keep their lines), and every flag's
    default appended to its help unless the help already states it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or "default" in text or default in (None, False, "", argparse.SUPPRESS):
            return text
        if isinstance(default, (list, tuple, dict)) and not default:
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default {shown})" if text else f"default {shown}"


def exit_codes(codes: Sequence[int] | Mapping[int, str]) -> str:
    """The codes a script can exit with; a mapping words a code the script's own way."""
    worded = codes if isinstance(codes, Mapping) else {code: EXIT_CODES[code] for code in codes}
    return "exit codes:\n" + "\n".join(f"  {code:<4d}{text}" for code, text in worded.items())


def task_listing(width: int = 100) -> str:
    """Every registered suite with its tasks (the control task last), without loading any dataset."""
    from .data.registry import suite_listing

    lines = ["tasks, by benchmark (a benchmark name stands for its tasks; the last one is its control task):"]
    for suite, names in suite_listing().items():
        lines.append(textwrap.fill(f"{suite}: {', '.join(names)}", width=width, initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


def parser(doc: str | None, codes: Sequence[int] | Mapping[int, str] = (0, 2), tasks: bool = False, **kwargs: Any) -> argparse.ArgumentParser:
    """An ArgumentParser whose help is the script's docstring (its examples included), then the
    tasks (when the script takes them) and the exit codes."""
    epilog = [task_listing()] if tasks else []
    epilog.append(exit_codes(codes))
    return argparse.ArgumentParser(description=(doc or "").strip(), epilog="\n\n".join(epilog), formatter_class=HelpFormatter, **kwargs)
