"""Pre-download open_clip weights into a cache folder (run where there is internet).

    TA_ALLOW_DOWNLOAD=1 python src/download_weights.py --model ViT-B-32 --pretrained openai --cache-dir ~/clip-cache

Afterwards pass the same --cache-dir to every script; no network is needed any more.
"""

from __future__ import annotations

import os

from task_arithmetic.cli_help import parser as help_parser
from task_arithmetic.errors import UserError, cli_entry


@cli_entry
def main(argv: list[str] | None = None) -> None:
    parser = help_parser(__doc__)
    parser.add_argument("--model", required=True, help="open_clip architecture, e.g. ViT-B-32")
    parser.add_argument("--pretrained", required=True, help="open_clip weight tag, e.g. openai")
    parser.add_argument("--cache-dir", required=True, help="folder to keep the weights in")
    args = parser.parse_args(argv)
    if os.environ.get("TA_ALLOW_DOWNLOAD") != "1":
        raise UserError("downloads are off; re-run with TA_ALLOW_DOWNLOAD=1 on a machine with internet access")
    from task_arithmetic.models.factory import ModelSpec, create_clip  # open_clip: after the flags are parsed

    create_clip(ModelSpec(args.model, args.pretrained, args.cache_dir))
    print(f"{args.model}/{args.pretrained} is cached in {args.cache_dir}")


if __name__ == "__main__":
    main()
