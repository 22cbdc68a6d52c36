"""Gather every evaluation result of a model into Markdown and CSV tables, PNG plots and claims.

    python src/report.py --model ViT-B-32 --pretrained openai
    python src/report.py --model-id TinyCLIP-embedded --results-root results

Writes results/<model_id>/report/ (report.md, *.csv, *.png, claims.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from task_arithmetic import flags
from task_arithmetic.cli_help import parser as help_parser
from task_arithmetic.errors import cli_entry
from task_arithmetic.paths import DEFAULT_RESULTS_ROOT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = help_parser(__doc__)
    parser.add_argument("--model", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument("--pretrained", default="openai", help="weight tag, local file, or 'none'")
    parser.add_argument("--model-id", default=None, type=flags.name("--model-id"), help="results folder name, instead of --model/--pretrained")
    parser.add_argument("--results-root", type=Path, default=DEFAULT_RESULTS_ROOT, help="where results/<model_id>/ lives")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from task_arithmetic.models.factory import ModelSpec
    from task_arithmetic.paths import Layout
    from task_arithmetic.reporting.build import build_report

    model_id = args.model_id or ModelSpec(args.model, flags.pretrained(args.pretrained)).model_id
    written = build_report(Layout(results_root=args.results_root), model_id)
    print(f"wrote {len(written)} files to {written[-1].parent}")
    print(f"report: {written[-1]}")


if __name__ == "__main__":
    main()
