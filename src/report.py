"""Gather every evaluation result of a model into Markdown and CSV tables, PNG plots and claims.

    python src/report.py --model ViT-B-32 --pretrained openai
    python src/report.py --model-id TinyCLIP-embedded --results-root results
    python src/report.py --compare results/ViT-B-32-openai results/ViT-B-16-openai [--out DIR]
    python src/report.py --compare results            # every model of a results root, its seed replicates too

Writes results/<model_id>/report/: report.md (provenance and caveats first), the tables as CSV,
PNG plots, claims.json, and every number as one long-format row in results.csv and
results.parquet (model, run, seed, evaluation, task, split, point, alpha, metric, value).
--compare prints one table of the headline test numbers across the models, runs and seeds of the
given folders (mean ± sd over seeds), and with --out writes it (compare.md) and the pooled rows
(compare.csv, compare.parquet, with a source column).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from task_arithmetic import flags
from task_arithmetic.cli_help import parser as help_parser
from task_arithmetic.errors import UserError, cli_entry
from task_arithmetic.paths import DEFAULT_RESULTS_ROOT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = help_parser(__doc__)
    parser.add_argument("--model", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument("--pretrained", default="openai", help="weight tag, local file, or 'none'")
    parser.add_argument("--model-id", default=None, type=flags.name("--model-id"), help="results folder name, instead of --model/--pretrained")
    parser.add_argument("--results-root", type=Path, default=DEFAULT_RESULTS_ROOT, help="where results/<model_id>/ lives")
    parser.add_argument("--compare", type=Path, nargs="+", default=None, metavar="PATH",
                        help="results/<model_id> folders or results roots: one table across them (instead of a model's report)")
    parser.add_argument("--out", type=Path, default=None, help="with --compare: write compare.md, compare.csv and compare.parquet to this folder")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.compare is not None:
        from task_arithmetic.reporting.compare import compare

        table, written = compare(args.compare, args.out)
        print(table.markdown())
        for path in written:
            print(f"wrote {path}")
        return
    if args.out is not None:
        raise UserError("--out goes with --compare; a model's report is written to results/<model_id>/report/")
    from task_arithmetic.models.factory import ModelSpec
    from task_arithmetic.paths import Layout
    from task_arithmetic.reporting.build import build_report

    model_id = args.model_id or ModelSpec(args.model, flags.pretrained(args.pretrained)).model_id
    written = build_report(Layout(results_root=args.results_root), model_id)
    print(f"wrote {len(written)} files to {written[-1].parent}")
    print(f"report: {written[-1]}")


if __name__ == "__main__":
    main()
