"""The dataset tool.

  download  fetch each task's Hugging Face hub copy (the parquet/webdataset files FusionBench
         evaluates on) into --data-location/hf/<owner>/<name>/, e.g. `--tasks real8`; resumable
         (rerun the same command), one progress bar, one line per task; tasks whose local layout
         or hub copy (also in the Hugging Face cache) is there are skipped; ImageNet stays local
         (gated on the hub). Needs internet; --dry-run prints the plan only
  split  make the hand-made splits of DTD, EuroSAT, SUN397 and RESISC45 from their raw downloads,
         extracted under --data-location (deterministic; files are hard-linked, or copied across
         file systems; each folder appears at once; rerunning is a no-op):
           DTD       dtd/images/<class>/*.jpg + dtd/labels/{train1,val1,test1}.txt   (dtd-r1.0.1.tar.gz)
                     -> dtd/train (train1+val1), dtd/test (test1)
           EuroSAT   EuroSAT_RGB/<class>/*.jpg or 2750/<class>/*.jpg                 (RGB EuroSAT zip)
                     -> EuroSAT_splits/{train,val,test} (80/10/10 per class)
           SUN397    SUN397/<letter>/<class>/*.jpg + SUN397/{Training,Testing}_01.txt (SUN397.tar.gz, Partitions.zip)
                     -> sun397/{train,test}/<a_abbey...> (official partition 1)
           RESISC45  resisc45/NWPU-RESISC45/<class>/*.jpg                            (NWPU-RESISC45.rar)
                     -> resisc45/resisc45-{train,val,test}.txt (60/20/20 per class) unless the published lists are there
  check  print, per task, "ready" (and which copy: local layout or hub copy) or exactly what is
         missing (exit 1 if any task is not ready); --counts also loads each ready task and
         reports its image and class counts, flagging a copy with fewer classes than the full
         dataset (an interrupted download or extraction); --fingerprints prints each part's
         split fingerprint (train / Val / test), as written with every model and result;
         --leaks reports test images identical to train images (content hash; exit 1 if any)
  cache  decode every image of the tasks once, through a model's preprocessing, into
         <data-location>/decoded/ (uint8, memory-mapped; the runs and evaluations of that model
         read it instead of decoding JPEGs on every pass); its size is printed and checked against
         the free space first. --train-crop also caches the 8/7-size records --train-crop cache reads.
"""

import argparse
import sys
from pathlib import Path

from task_arithmetic.cli_help import parser as help_parser
from task_arithmetic.errors import cli_entry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = help_parser(__doc__, (0, 1, 2, 130), tasks=True)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("download", "fetch the tasks' Hugging Face hub copies"),
        ("split", "make the hand-made split folders/lists"),
        ("check", "report which tasks are ready"),
        ("cache", "decode every image once into <data-location>/decoded/ for one model's preprocessing"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--data-location", type=Path, required=True, help="folder holding the datasets")
        if name == "download":
            command.add_argument("--tasks", required=True, help="real8, real14, real20 or comma-separated task names")
            command.add_argument("--dry-run", action="store_true", help="print what would be fetched and what is ready; fetch nothing")
        elif name == "cache":
            command.add_argument("--tasks", default="", help="comma list or a benchmark (default real8)")
            command.add_argument("--model", default="ViT-B-32", help="open_clip architecture whose preprocessing the runs use")
            command.add_argument("--pretrained", default="openai", help="its weight tag or file (the tag can change the preprocessing); nothing is read")
            command.add_argument("--train-crop", action="store_true", help="also cache the records --train-crop cache crops from")
        else:
            command.add_argument("--tasks", default="", help="comma-separated task names or a suite (default: all)")
        if name == "check":
            command.add_argument("--counts", action="store_true", help="load each ready task and check its image and class counts")
            command.add_argument("--fingerprints", action="store_true", help="print each ready task's split fingerprints (train / Val / test)")
            command.add_argument("--leaks", action="store_true", help="report test images identical to train images (reads every image file)")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from task_arithmetic.data.real import tool  # the dataset readers: after the flags are parsed

    tasks = [name.strip() for name in args.tasks.split(",") if name.strip()]
    if args.command == "download":
        return 0 if tool.download(args.data_location, tasks, dry_run=args.dry_run, progress=sys.stderr.isatty()) else 1
    if args.command == "cache":
        from task_arithmetic.data.decoded import prepare
        from task_arithmetic.data.registry import parse_task_list
        from task_arithmetic.models.factory import ModelSpec, parse_pretrained, transforms_for

        train, val = transforms_for(ModelSpec(args.model, parse_pretrained(args.pretrained)))
        for line in prepare(args.data_location, parse_task_list(args.tasks or "real8"), train, val, args.train_crop):
            print(line)
        return 0
    if args.command == "split":
        for line in tool.split(args.data_location, tasks):
            print(line)
        return 0
    report = tool.check(args.data_location, tasks, counts=args.counts, fingerprints=args.fingerprints, leaks=args.leaks)
    for entry in report:
        print(entry.line())
    return 0 if all(entry.ready for entry in report) else 1


if __name__ == "__main__":
    sys.exit(main())
