"""Pre-download open_clip weights into a cache folder (run where there is internet).

    TA_ALLOW_DOWNLOAD=1 python src/download_weights.py --model ViT-B-32 --pretrained openai --cache-dir ~/clip-cache

Afterwards pass the same --cache-dir to every script; no network is needed any more.
"""

from __future__ import annotations

import argparse
import os

from task_arithmetic.errors import UserError, cli_entry
from task_arithmetic.models.factory import ModelSpec, create_clip


@cli_entry
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="open_clip architecture, e.g. ViT-B-32")
    parser.add_argument("--pretrained", required=True, help="open_clip weight tag, e.g. openai")
    parser.add_argument("--cache-dir", required=True, help="folder to keep the weights in")
    args = parser.parse_args(argv)
    from task_arithmetic.plugins import register_builtin_plugins

    register_builtin_plugins()  # the embedded benchmark's tasks and weights
    if os.environ.get("TA_ALLOW_DOWNLOAD") != "1":
        raise UserError("downloads are off; re-run with TA_ALLOW_DOWNLOAD=1 on a machine with internet access")
    create_clip(ModelSpec(args.model, args.pretrained, args.cache_dir))
    print(f"{args.model}/{args.pretrained} is cached in {args.cache_dir}")


if __name__ == "__main__":
    main()
