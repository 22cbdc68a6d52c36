"""Import public CLIP checkpoints: theta_0 (with its text tower, for the heads) and fine-tuned runs.

    python src/import_checkpoints.py --pretrained-hf DIR --finetuned-hf Cars=DIR --finetuned-hf SVHN=DIR --tag public
    python src/import_checkpoints.py --pretrained-hf DIR --finetuned-open-clip Cars=model.pt --tag public

--pretrained-hf is a Hugging Face CLIPModel folder (e.g. openai/clip-vit-base-patch32 downloaded
with `hf download ... --local-dir DIR`); --finetuned-hf a CLIPVisionModel (or CLIPModel) folder;
--finetuned-open-clip an open_clip state-dict file. Fine-tuned runs land at
checkpoints/<model_id>/<task>/standard-<tag>/, and the printed --model/--pretrained flags locate
them in every other script (e.g. `--tag public` for the evaluations). Models of another
architecture or activation, or far from theta_0, are refused; every source is checked before
anything is written, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from task_arithmetic import flags
from task_arithmetic.checkpoints import DEFAULT_MAX_DISTANCE
from task_arithmetic.cli_help import parser as help_parser
from task_arithmetic.errors import UserError, cli_entry
from task_arithmetic.paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_RESULTS_ROOT, Layout, check_folder_flag


def task_source(text: str) -> tuple[str, Path]:
    task, sep, source = text.partition("=")
    if not sep or not task or not source:
        raise argparse.ArgumentTypeError(f"expected TASK=PATH, got '{text}'")
    return flags.name("task")(task), Path(source)


@cli_entry
def main(argv: list[str] | None = None) -> list[Path]:
    parser = help_parser(__doc__)
    parser.add_argument("--pretrained-hf", type=Path, required=True, help="HF CLIPModel folder of theta_0")
    parser.add_argument("--finetuned-hf", type=task_source, action="append", default=[], metavar="TASK=DIR", help="a fine-tuned HF CLIPVisionModel/CLIPModel folder (repeatable)")
    parser.add_argument("--finetuned-open-clip", type=task_source, action="append", default=[], metavar="TASK=FILE", help="a fine-tuned open_clip state-dict file (repeatable)")
    parser.add_argument("--tag", default="public", type=flags.name("--tag", allow_empty=True), help="run name suffix: standard-<tag>")
    parser.add_argument("--name", default=None, type=flags.name("--name"), help="name of theta_0's weights file (default: the folder's name)")
    parser.add_argument("--model", default=None, help="open_clip architecture name (default: derived from the HF config)")
    parser.add_argument("--max-distance", type=flags.positive_float, default=DEFAULT_MAX_DISTANCE,
                        help="refuse fine-tuned models further than this relative L2 distance from theta_0")
    parser.add_argument("--checkpoint-root", type=Path, default=DEFAULT_CHECKPOINT_ROOT, help="where theta_0 and the runs are written")
    args = parser.parse_args(argv)
    from task_arithmetic.checkpoints.importing import import_checkpoints  # torch, transformers: after the flags are parsed

    if not args.tag:
        raise UserError("--tag must not be empty: imported runs must not take the place of the suite's own standard runs")
    check_folder_flag("--checkpoint-root", args.checkpoint_root)
    layout = Layout(args.checkpoint_root, DEFAULT_RESULTS_ROOT)
    result = import_checkpoints(args.pretrained_hf, args.finetuned_hf + args.finetuned_open_clip, layout, args.tag, args.name, args.model, args.max_distance)
    base = result.base
    kind = "open_clip architecture" if base.named else "architecture registered from the weights file"
    print(f"theta_0: {layout.zeroshot(base.spec.model_id)} ({kind} {base.spec.name})")
    for task, path, distance in result.runs:
        print(f"{task}: {path} (relative distance to theta_0 {distance:.4f})")
    print(f"use: --model {base.spec.name} --pretrained {base.weights_file} --checkpoint-root {args.checkpoint_root} --tag {args.tag}")
    return [base.weights_file, *(path for _, path, _ in result.runs)]


if __name__ == "__main__":
    main()
