"""Gather every evaluation result of a model into Markdown and CSV tables, PNG plots and claims.

    python src/report.py --model ViT-B-32 --pretrained openai

Writes results/<model_id>/report/ (report.md, *.csv, *.png, claims.json).
"""

import argparse
from pathlib import Path

from task_arithmetic.errors import cli_entry
from task_arithmetic.models.factory import ModelSpec, parse_pretrained
from task_arithmetic.paths import DEFAULT_RESULTS_ROOT, Layout
from task_arithmetic.reporting.build import build_report


@cli_entry
def main(argv: list[str] | None = None) -> None:
    from task_arithmetic.plugins import register_builtin_plugins

    register_builtin_plugins()  # the embedded benchmark's tasks and weights
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default="openai", help="weight tag, local file, or 'none'")
    parser.add_argument("--model-id", default=None, help="results folder name, instead of --model/--pretrained")
    parser.add_argument("--results-root", type=Path, default=DEFAULT_RESULTS_ROOT)
    args = parser.parse_args(argv)
    pretrained = parse_pretrained(args.pretrained)
    model_id = args.model_id or ModelSpec(args.model, pretrained).model_id
    written = build_report(Layout(results_root=args.results_root), model_id)
    print(f"wrote {len(written)} files to {written[-1].parent}")
    print(f"report: {written[-1]}")


if __name__ == "__main__":
    main()
