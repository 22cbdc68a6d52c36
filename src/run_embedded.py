"""The whole tau-Jp study on the embedded benchmark, offline, on CPU, in minutes.

    python src/run_embedded.py                 # default preset: the README's main command
    python src/run_embedded.py --preset smoke  # the tests' miniature of the same pipeline

Pretrains (cached) a tiny CLIP, fine-tunes every embedded task in standard, linear and tau-Jp
modes, runs every evaluation and writes tables, plots and the paper's claims checked against
these numbers to results/TinyCLIP-<tag>/report/. A re-run skips finished steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from task_arithmetic.embedded.presets import PRESETS
from task_arithmetic.errors import cli_entry
from task_arithmetic.paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT
from task_arithmetic.pipeline.study import StudyConfig, run_study


@cli_entry
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--data-location", type=Path, default=DEFAULT_DATA_LOCATION)
    parser.add_argument("--checkpoint-root", type=Path, default=DEFAULT_CHECKPOINT_ROOT)
    parser.add_argument("--results-root", type=Path, default=DEFAULT_RESULTS_ROOT)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    args = parser.parse_args(argv)
    written = run_study(
        StudyConfig(args.preset, args.data_location, args.checkpoint_root, args.results_root, args.device, not args.no_progress)
    )
    report = next((p for p in written if p.name == "report.md"), None)
    if report is not None:
        print(f"report: {report}")


if __name__ == "__main__":
    main()
